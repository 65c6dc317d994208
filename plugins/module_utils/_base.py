# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The base of every module of the collection, without any connection: options, run, one way to fail.

Shaped like openstack.cloud's OpenStackModule: a module is a subclass with a class-level C(argument_spec) and
C(module_kwargs) and a C(run()) that returns the result dict; C(main()) is C(ThatModule()()). Whatever goes wrong
in a way the module can explain is raised as C(ModuleError) and becomes one C(fail_json), in this one place.
The XenAPI modules build on it (C(_xenapi.XenAPIModule) adds the connection options and the session).

Private to the collection: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule, missing_required_lib


class ModuleError(Exception):
    """An error a module reports as is: the message names the object, the problem and the fix.

    Args:
        msg: the message shown to the user.
        **extra: extra keys returned with the failure (for example C(xapi_error)).
    """

    def __init__(self, msg, **extra):
        super(ModuleError, self).__init__(msg)
        self.msg = msg
        self.extra = extra


class BaseModule:
    """Base class of the collection's modules.

    Subclasses set C(argument_spec) and C(module_kwargs) (the keyword arguments of AnsibleModule) and implement
    C(run()). C(check_params()) refuses bad option values before anything is read or changed. A module that needs
    a library lists it in C(required_libraries) as (name, the import error's traceback or None when it imported).
    """

    argument_spec = {}
    module_kwargs = {}
    required_libraries = ()

    def __init__(self):
        self.ansible = AnsibleModule(argument_spec=self.full_argument_spec(), **self.module_kwargs)
        self.params = self.ansible.params
        self.check_mode = self.ansible.check_mode

    def full_argument_spec(self):
        """Return the argument_spec AnsibleModule gets: the module's own options (bases may add theirs)."""
        return dict(self.argument_spec)

    def prepare(self):
        """Make what every module of a base needs before the options are checked (bases override it)."""

    def check_params(self):
        """Check the module's own options before anything is done; raise ModuleError to refuse them."""

    def run(self):
        """Do the module's work and return the result dict."""
        raise NotImplementedError

    def execute(self):
        """Run the module's work in whatever context its base needs (a XenAPI session, for example)."""
        return self.run()

    def __call__(self):
        for name, import_error in self.required_libraries:
            if import_error is not None:
                self.ansible.fail_json(msg=missing_required_lib(name), exception=import_error)
        try:
            self.prepare()
            self.check_params()
            result = self.execute()
        except ModuleError as error:
            self.ansible.fail_json(msg=error.msg, **error.extra)
        self.ansible.exit_json(**result)
