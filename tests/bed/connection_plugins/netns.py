# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import shlex
import subprocess

from ansible.errors import AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ensure_connect
from ansible.plugins.connection.local import Connection as LocalConnection
from ansible.utils.display import Display

DOCUMENTATION = r"""
name: netns
short_description: Run tasks inside a Linux network namespace of the controller
description:
  - Runs every command of a task on the Ansible controller as C(ip netns exec NAME /bin/sh -c COMMAND), so the
    host is a network namespace that sees only its own interfaces, addresses, routes, iptables rules and sysctls.
  - C(ip netns exec) also bind-mounts each entry of C(/etc/netns/NAME/) over the same name under C(/etc), so a
    namespace can have its own C(/etc/nova), C(/etc/init.d) and so on. File transfers therefore run inside the
    namespace too, and a path under such an entry means the host's own file on both C(put) and C(fetch).
  - This plugin belongs to the collection's test bed (C(tests/bed)); it is not shipped in the collection.
    Put C(tests/bed/connection_plugins) on the connection plugin path (E(ANSIBLE_CONNECTION_PLUGINS)) to use it.
author: xenserver.openstack contributors
requirements:
  - C(ip) from iproute2 on the controller, and the privileges to enter network namespaces (root).
options:
  netns_name:
    description:
      - The name of the network namespace, as C(ip netns list) shows it.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_netns_name
  netns_path:
    description:
      - Directories put first on the PATH of every command in the namespace, separated by colons; the host's own
        bin directories (the test bed's compute VMs keep their guest tools and ifupdown there). Empty means none.
    type: str
    default: ""
    vars:
      - name: ansible_netns_path
  remote_user:
    description:
      - The user that runs every command in the namespace (C(runuser -u), as root may on the controller), a user of
        the namespace's own C(/etc/passwd) (the test bed gives its compute VMs one with C(--sudo-user)), so that
        C(become) runs C(sudo) there as over SSH. Not set, the user that runs Ansible.
    type: str
    vars:
      - name: ansible_user
    keyword:
      - name: remote_user
  become_success_timeout:
    description:
      - Number of seconds to wait for become to succeed when enabled.
      - The default is used if the configured value is less than 1.
    type: int
    default: 10
    vars:
      - name: ansible_netns_become_success_timeout
  become_strip_preamble:
    description:
      - Strip the become output that precedes the command's own output. Disable for additional diagnostics.
    type: bool
    default: true
    vars:
      - name: ansible_netns_become_strip_preamble
extends_documentation_fragment:
  - connection_pipelining
notes:
  - The filesystem is the controller's; only C(/etc/netns/NAME/) entries differ inside the namespace.
  - Without O(remote_user), commands run as the user that runs Ansible.
"""

display = Display()


class Connection(LocalConnection):
    """The local connection, with every command and file transfer inside a network namespace."""

    transport = "netns"
    has_pipelining = True

    def _netns_exec(self) -> list[str]:
        return ["ip", "netns", "exec", self.get_option("netns_name")]

    def _path(self) -> list[str]:
        """``env PATH=...`` with the host's own bin directories first, when it has some."""
        if not self.get_option("netns_path"):
            return []
        return ["env", "PATH=%s:%s" % (self.get_option("netns_path"), os.environ.get("PATH", "/usr/bin:/bin"))]

    def set_options(self, task_keys=None, var_options=None, direct=None) -> None:
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        if not self.get_option("remote_user"):  # Ansible's user: become is skipped for root as on a local connection
            self.set_option("remote_user", self.default_user)

    def _user(self) -> list[str]:
        """``runuser -u USER --`` when commands run as another user than Ansible's."""
        user = self.get_option("remote_user")
        return ["runuser", "-u", user, "--"] if user and user != self.default_user else []

    def _connect(self) -> Connection:
        super()._connect()
        self._play_context.remote_user = self.get_option("remote_user")  # the local connection puts Ansible's
        return self

    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = True) -> tuple[int, bytes, bytes]:
        """Run ``cmd`` with /bin/sh inside the namespace, as its user."""
        argv = [*self._netns_exec(), *self._path(), *self._user(), "/bin/sh", "-c", to_text(cmd)]
        wrapped = "exec " + shlex.join(argv)
        return super().exec_command(wrapped, in_data=in_data, sudoable=sudoable)

    def _transfer(self, argv: list[str], **streams: object) -> None:
        # As the remote user, as SSH would: Ansible then hands the file to the become user itself.
        result = subprocess.run(
            [*self._netns_exec(), *self._user(), *argv], stderr=subprocess.PIPE, check=False, **streams
        )
        if result.returncode:
            raise AnsibleError(
                "%s in network namespace %s failed: %s"
                % (shlex.join(argv), self.get_option("netns_name"), to_text(result.stderr).strip())
            )

    @ensure_connect
    def put_file(self, in_path: str, out_path: str) -> None:
        """Copy controller file ``in_path`` to ``out_path`` as the namespace sees it."""
        display.vvv("PUT %s TO %s" % (in_path, out_path), host=self._play_context.remote_addr)
        if not os.path.exists(to_bytes(in_path, errors="surrogate_or_strict")):
            raise AnsibleFileNotFound("file or module does not exist: %s" % in_path)
        with open(to_bytes(in_path, errors="surrogate_or_strict"), "rb") as source:
            self._transfer(["/bin/sh", "-c", 'cat > "$1"', "sh", out_path], stdin=source)

    @ensure_connect
    def fetch_file(self, in_path: str, out_path: str) -> None:
        """Copy ``in_path`` as the namespace sees it to controller file ``out_path``."""
        display.vvv("FETCH %s TO %s" % (in_path, out_path), host=self._play_context.remote_addr)
        with open(to_bytes(out_path, errors="surrogate_or_strict"), "wb") as target:
            self._transfer(["cat", "--", in_path], stdout=target)
