#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vhd_image
short_description: Ensure exactly one Glance image of a name, in XenServer format (VHD in a gzip tar)
version_added: 0.1.0
description:
  - Ensures that Glance has exactly one image named O(name), with C(container_format=ovf), C(disk_format=vhd),
    the O(properties) and O(visibility) given, and the content of O(filename).
  - O(filename) must be a XenServer-format image - a gzip tar whose first member is C(0.vhd) and whose members are
    all VHD files. A qcow2, raw or bare VHD file is refused by its first bytes, before Glance is contacted, with
    the way to convert it (M(xenserver.openstack.vhd_tgz)).
  - The whole file is checked (every member gunzipped, each ending with a VHD footer) in one streaming pass that
    also computes its digests. When an image of the name may already hold the file (one of the same size), and
    in check mode, that pass comes first and decides. Otherwise the file is uploaded anyway, so it is checked
    while it uploads - into a private image named C(NAME [upload in progress]) that gets its name, visibility and
    digests only once the check passed and Glance's checksum is the file's, and that is deleted otherwise (an
    interrupted run's is deleted by the next). So a broken file never appears under O(name).
  - An image of that name whose content (Glance's C(os_hash_value), or C(checksum) when Glance has no
    C(os_hash_value)) or formats differ is replaced - the new image is uploaded first and the old ones deleted
    after, so that the name never disappears.
  - An image whose content and formats are right but whose O(properties) or O(visibility) differ is updated in
    place, which keeps its id. Properties not named in O(properties) are left as they are.
  - Same content and metadata - nothing is uploaded. Extra images of the same name are deleted; images of other
    names are never touched.
  - The upload streams from disk - the module's memory does not grow with the image size.
  - When Glance (or Keystone) does not answer yet, the module retries for O(wait_timeout) seconds before failing.
  - Every request is bounded - a Glance that accepts connections but never answers (stopped, or hung) makes the
    module fail within O(wait_timeout) + 5 seconds, with a message that names Glance and the time; later requests
    (the upload, the updates) fail after O(api_timeout) seconds without an answer.
extends_documentation_fragment:
  - xenserver.openstack.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the metadata of the images of that name before and after.
options:
  name:
    description:
      - Name of the image. Fuel's health checks use V(TestVM).
    type: str
    required: true
  state:
    description:
      - V(present) ensures the image, V(absent) deletes every image of that name.
    type: str
    choices: [present, absent]
    default: present
  filename:
    description:
      - Path of the XenServer-format image (C(.vhd.tgz)) on the host that runs the module.
      - Required when O(state=present).
    type: path
  visibility:
    description:
      - Visibility of the image. V(public) (the default, as test images serve every project) needs admin rights
        in Glance's default policy.
    type: str
    choices: [public, private, shared, community]
    default: public
  properties:
    description:
      - Image properties, for example C(vm_mode) (V(hvm), or V(xen) for PV guests on hosts older than XCP-ng 8 and
        Citrix Hypervisor 8), C(os_type) (V(linux), V(windows)), C(auto_disk_config), C(hypervisor_type) (V(xen)).
      - Values are sent as strings; a boolean becomes V(True) or V(False).
      - Glance's own fields (C(name), C(id), C(status), C(visibility), C(checksum), C(container_format), ...) cannot be
        set here.
    type: dict
    default: {}
  wait_timeout:
    description:
      - Seconds to keep retrying while Glance, or Keystone, does not answer (connection refused, no answer, 502, 503,
        504, no version document), for example while a controller boots.
      - V(0) fails at once.
    type: int
    default: 60
  api_timeout:
    description:
      - Seconds a request to Glance or Keystone may take to connect, and then to send each part of its answer.
      - While the module waits for Glance (O(wait_timeout)), a request gets no more than the time left of that wait
        (at least one second).
    type: int
    default: 60
  cloud:
    description:
      - Name of a cloud in C(clouds.yaml), or a dict of connection settings as a C(clouds.yaml) entry holds them.
      - If not set, openstacksdk reads the E(OS_*) environment variables (C(openrc)), or the cloud named by
        E(OS_CLOUD).
      - Never logged (Ansible logs a module's options as it starts); of its values only the secrets (passwords,
        tokens, application credential secrets) are hidden from the output, like those of O(auth).
    type: raw
  auth_type:
    description:
      - keystoneauth plugin name, for example V(password), V(token), V(v3applicationcredential), or V(none) for
        a Glance without Keystone (then give C(endpoint) in O(auth)).
    type: str
  auth:
    description:
      - Authentication settings of O(auth_type), for example C(auth_url), C(username), C(password),
        C(project_name), C(user_domain_name), C(project_domain_name); or C(endpoint) for O(auth_type=none).
      - Merged over the settings of O(cloud). Never logged; its secrets are hidden from the output.
    type: dict
  region_name:
    description:
      - Region of the image service.
    type: str
  interface:
    description:
      - Which endpoint of the catalog to use. If not set, the cloud's setting, else V(public).
    type: str
    choices: [public, internal, admin]
    aliases: [endpoint_type]
  validate_certs:
    description:
      - Whether to verify TLS certificates. If not set, the cloud's setting, else V(true).
    type: bool
    aliases: [verify]
  ca_cert:
    description:
      - Path of a CA bundle to verify the endpoints' certificates with.
    type: path
    aliases: [cacert]
notes:
  - Without Keystone (a bare Glance, as in this collection's tests) use O(auth_type=none) and the Glance URL as
    C(endpoint) in O(auth); openstacksdk then finds the v2 API by version discovery. The C(admin_token) plugin
    skips that discovery and needs the URL with C(/v2).
  - Replacing an image gives it a new id; instances booted from the old one keep running.
  - A C(protected) image of that name that would have to be deleted stops the module before any change.
requirements:
  - openstacksdk >= 1.0 on the host that runs the module
author:
  - xenserver.openstack developers (@xenserver)
"""

EXAMPLES = r"""
- name: Make TestVM the XenServer-format CirrOS, HVM, for every project
  xenserver.openstack.vhd_image:
    cloud: admin
    name: TestVM
    filename: /var/cache/xenserver-openstack/guest_images/TestVM.vhd.tgz
    properties:
      vm_mode: hvm
      os_type: linux
      hypervisor_type: xen

- name: The same with the credentials of an openrc file (OS_* variables) and a longer wait for Glance
  xenserver.openstack.vhd_image:
    name: TestVM
    filename: /root/cirros-0.4.0-x86_64-disk.vhd.tgz
    properties:
      vm_mode: xen
    wait_timeout: 300
  environment:
    OS_AUTH_URL: http://192.0.2.10:5000/v3
    OS_USERNAME: admin
    OS_PASSWORD: "{{ keystone_admin_password }}"
    OS_PROJECT_NAME: admin
    OS_USER_DOMAIN_NAME: Default
    OS_PROJECT_DOMAIN_NAME: Default

- name: Against a Glance without Keystone
  xenserver.openstack.vhd_image:
    cloud:
      auth_type: none
      auth:
        endpoint: http://127.0.0.1:9292
    name: TestVM
    filename: TestVM.vhd.tgz

- name: Delete the legacy Heat test image
  xenserver.openstack.vhd_image:
    cloud: admin
    name: F17-x86_64-cfntools
    state: absent
"""

RETURN = r"""
image:
  description:
    - The Glance record of the image named O(name) after the run, as Glance returns it (its properties are keys
      of it).
    - In check mode, the record of the image that would be kept; empty when a new one would be uploaded.
    - Empty for O(state=absent).
  returned: success
  type: dict
  sample:
    id: 6c1f2f4e-8d2a-4f0e-9a51-3b2e1c0d9f7a
    name: TestVM
    status: active
    container_format: ovf
    disk_format: vhd
    visibility: public
    checksum: 2b1d7f5c0c3e4a5b6c7d8e9f0a1b2c3d
    os_hash_algo: sha512
    os_hash_value: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a089f86d081884c7d659a2feaa0c55ad015
    size: 12716457
    vm_mode: hvm
    os_type: linux
uploaded:
  description: Whether the content of O(filename) was (in check mode, would be) uploaded as a new image.
  returned: success
  type: bool
  sample: false
deleted:
  description: Ids of the images of that name that were (in check mode, would be) deleted.
  returned: success
  type: list
  elements: str
  sample: [0b5e7c1d-2f3a-4b6c-8d9e-0f1a2b3c4d5e]
"""

import os
import re
import threading
import time

from ansible.module_utils.common.text.converters import to_native, to_text
from ansible_collections.xenserver.openstack.plugins.module_utils._base import BaseModule, ModuleError
from ansible_collections.xenserver.openstack.plugins.module_utils._compat import (
    STRING_TYPES,
    monotonic,
    parse_qsl,
    urlsplit,
)
from ansible_collections.xenserver.openstack.plugins.module_utils._vhd import (
    DIGESTS,
    VHDImageError,
    check_head,
    inspect_vhd_tgz,
)

try:
    import openstack
    from keystoneauth1 import exceptions as ksa_exceptions
    from openstack import exceptions as sdk_exceptions
except ImportError:
    import traceback

    SDK_IMPORT_ERROR = traceback.format_exc()
    openstack = None
else:
    SDK_IMPORT_ERROR = None

COLLECTION = "xenserver.openstack"
CONTAINER_FORMAT = "ovf"
DISK_FORMAT = "vhd"
RETRY_INTERVAL = 2
RETRY_HTTP_STATUS = (502, 503, 504)
PATCH_HEADERS = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
DATA_HEADERS = {"Content-Type": "application/octet-stream"}
# The name of an image while it uploads and its file is being checked (private, until the check passed).
UPLOAD_NAME = "%s [upload in progress]"
# Glance's own image fields: read-only, or set through an option of this module.
RESERVED = frozenset(
    (
        "id",
        "name",
        "status",
        "visibility",
        "protected",
        "os_hidden",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "size",
        "virtual_size",
        "container_format",
        "disk_format",
        "min_disk",
        "min_ram",
        "owner",
        "created_at",
        "updated_at",
        "tags",
        "self",
        "file",
        "schema",
        "locations",
        "direct_url",
        "stores",
    )
)
SECRET_KEY = re.compile(r"pass|token|secret|key", re.IGNORECASE)


class GlanceError(Exception):
    """A failure to report as is: the message names the image or endpoint, the problem and the fix."""


def desired_properties(properties):
    """Return the O(properties) option as Glance strings; refuse Glance's own fields."""
    reserved = sorted(RESERVED.intersection(properties))
    if reserved:
        raise GlanceError(
            "properties must not set Glance's own fields %s: use the module's options (visibility) or leave them "
            "to Glance." % ", ".join(reserved)
        )
    empty = sorted(key for key, value in properties.items() if value is None)
    if empty:
        raise GlanceError("properties %s have no value: give each a value, or leave it out." % ", ".join(empty))
    return dict((key, to_text(value)) for key, value in properties.items())


def same_content(image, digests):
    """Whether a Glance image holds the file with these digests, in XenServer format, ready to boot."""
    if (image.get("status"), image.get("container_format"), image.get("disk_format")) != (
        "active",
        CONTAINER_FORMAT,
        DISK_FORMAT,
    ):
        return False
    algorithm = image.get("os_hash_algo")
    if algorithm and image.get("os_hash_value"):
        return image["os_hash_value"] == digests[algorithm]
    return image.get("checksum") == digests["md5"]


def metadata_patch(image, visibility, properties):
    """Return the JSON-patch operations that give C(image) this visibility and these properties."""
    wanted = dict(properties, visibility=visibility)
    return [
        dict(op="replace" if key in image else "add", path="/" + key, value=value)
        for key, value in sorted(wanted.items())
        if image.get(key) != value
    ]


def may_hold(image, size):
    """Whether an image could hold a file of this size (same size, or Glance does not say): only then do the file's
    digests have to be known before deciding what to do."""
    return image.get("size") in (None, size)


class BackgroundCheck:
    """inspect_vhd_tgz() of a file in a thread of its own, while the file uploads: the check and the upload read the
    file at the same time (hashlib and zlib run without the GIL), so the run reads it in about the time of one
    pass instead of two."""

    def __init__(self, path):
        self.path = path
        self.found = None
        self.error = None
        self.thread = threading.Thread(target=self._check)
        self.thread.daemon = True
        self.thread.start()

    def _check(self):
        try:
            self.found = inspect_vhd_tgz(self.path)
        except VHDImageError as error:
            self.error = error
        except Exception as error:
            self.error = VHDImageError("%s could not be checked: %s" % (self.path, error))

    def digests(self):
        """Wait for the check; return the file's digests, or raise what it found wrong."""
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.found["digests"]


def plan(images, digests, visibility, properties):
    """Decide what to do with the images of the name.

    Args:
        images: their Glance records, oldest first.
        digests: the file's digests, or None for state=absent.
        visibility: the wanted visibility.
        properties: the wanted properties (Glance strings).

    Returns:
        dict: C(keep) (the record to keep, or None to upload a new image), C(patch) (JSON-patch operations for
        the kept image) and C(delete) (the records to delete).
    """
    if digests is None:
        return dict(keep=None, patch=[], delete=list(images))
    candidates = [image for image in images if same_content(image, digests)]
    candidates.sort(key=lambda image: bool(metadata_patch(image, visibility, properties)))
    keep = candidates[0] if candidates else None
    return dict(
        keep=keep,
        patch=metadata_patch(keep, visibility, properties) if keep else [],
        delete=[image for image in images if image is not keep],
    )


def image_view(image, property_keys):
    """The part of a Glance record shown in the diff: formats, state, content and the managed properties."""
    view = dict(
        (key, image.get(key)) for key in ("name", "status", "container_format", "disk_format", "visibility", "checksum")
    )
    view["properties"] = dict((key, image.get(key)) for key in sorted(property_keys))
    return view


def connection_settings(params):
    """Return the openstack.connect() arguments: the cloud (name or dict) with the module's options over it."""
    cloud = params["cloud"]
    if isinstance(cloud, dict):
        settings = dict(cloud)
    elif cloud is None or isinstance(cloud, STRING_TYPES):
        settings = dict(cloud=cloud) if cloud else {}
    else:
        raise GlanceError("cloud must be the name of a clouds.yaml entry or a dict of its settings.")
    if params["auth"] is not None:
        settings["auth"] = dict(settings.get("auth") or {}, **params["auth"])
    options = (
        ("auth_type", "auth_type"),
        ("region_name", "region_name"),
        ("interface", "interface"),
        ("validate_certs", "verify"),
        ("ca_cert", "cacert"),
    )
    for option, key in options:
        if params[option] is not None:
            settings[key] = params[option]
    return settings


def secrets_of(settings):
    """Return the secret strings (passwords, tokens, application credential secrets) among connection settings."""
    found = set()
    for mapping in (settings, settings.get("auth") or {}):
        found.update(v for k, v in mapping.items() if isinstance(v, STRING_TYPES) and v and SECRET_KEY.search(k))
    return found


def strings_of(value):
    """Every string in a value (nested dicts and lists too), as AnsibleModule collects a no_log option's values."""
    if isinstance(value, dict):
        return set().union(*(strings_of(item) for item in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(strings_of(item) for item in value)) if value else set()
    return set([to_native(value)]) if value not in (None, "") and not isinstance(value, bool) else set()


def mask_only_secrets(module, settings):
    """C(cloud) and C(auth) are no_log, so the option log never shows them; Ansible then also hides each of their
    values wherever it appears in the output (a cloud name, C(public), the Keystone URL). Hide only the secrets."""
    for option in ("cloud", "auth"):
        module.no_log_values.difference_update(strings_of(module.params[option]))
    module.no_log_values.update(secrets_of(settings))


def is_retryable(error):
    """Whether an error means Glance or Keystone does not answer yet (as opposed to a wrong request)."""
    if isinstance(
        error, (ksa_exceptions.ConnectFailure, ksa_exceptions.ConnectTimeout, ksa_exceptions.DiscoveryFailure)
    ):
        return True
    if isinstance(error, ksa_exceptions.HttpError):
        return error.http_status in RETRY_HTTP_STATUS
    return isinstance(error, sdk_exceptions.HttpException) and error.status_code in RETRY_HTTP_STATUS


class Glance:
    """The image service of one cloud, through openstacksdk, with the calls this module makes."""

    def __init__(self, settings, api_timeout):
        self.api_timeout = api_timeout
        try:
            self.conn = openstack.connect(app_name=COLLECTION, api_timeout=api_timeout, **settings)
        except (sdk_exceptions.SDKException, ksa_exceptions.ClientException) as error:
            raise GlanceError(
                "The OpenStack connection settings are not usable: %s. Give the cloud option (a clouds.yaml entry "
                "or a dict), auth_type and auth, or the OS_* environment variables of an openrc file."
                % str(error).rstrip(".")
            )

    @property
    def where(self):
        """Where the image service is, for messages: the endpoint, else the Keystone the catalog comes from."""
        auth = self.conn.config.get_auth_args()
        endpoint = self.conn.config.get_endpoint("image") or auth.get("endpoint")
        if endpoint:
            return "Glance at %s" % endpoint
        return "The image service of the cloud whose Keystone is %s" % auth.get("auth_url", "not set")

    def _checked(self, response):
        sdk_exceptions.raise_from_response(response)
        return response.json() if response.content else None

    def images(self, name):
        """Return the records of the images named C(name), oldest first."""
        images, params = [], dict(name=name, sort="created_at:asc")
        while True:
            body = self._checked(self.conn.image.get("/images", params=params))
            images.extend(body["images"])
            if not body.get("next"):
                return images
            params = dict(parse_qsl(urlsplit(body["next"]).query))

    def images_when_up(self, name, wait_timeout):
        """Like images(), retrying while Glance or Keystone does not answer, for at most C(wait_timeout) s (each
        request limited to the time left, so that one that gets no answer cannot outlast the wait)."""
        deadline = monotonic() + wait_timeout
        while True:
            self.conn.session.timeout = max(1, min(self.api_timeout, deadline - monotonic()))
            try:
                return self.images(name)
            except (sdk_exceptions.SDKException, ksa_exceptions.ClientException) as error:
                if not is_retryable(error):
                    raise
                remaining = deadline - monotonic()
                if remaining <= 0:
                    raise GlanceError(
                        "%s did not answer within %d s: %s. Check that it runs and that the connection settings "
                        "(cloud, auth, OS_* variables) point at it; raise wait_timeout if it needs longer to start."
                        % (self.where, wait_timeout, str(error).rstrip("."))
                    )
                time.sleep(min(RETRY_INTERVAL, remaining))
            finally:
                self.conn.session.timeout = self.api_timeout

    def image(self, image_id):
        return self._checked(self.conn.image.get("/images/%s" % image_id))

    def upload_while_checking(self, name, filename, check, visibility, properties):
        """Upload the file into a private image of a name of its own while C(check) reads it; once the check
        passed and Glance's checksum is the file's, give the image its name, visibility and digests. A file the
        check refuses, or any failure on the way, deletes that image: a broken file is never seen under the name."""
        created = self._checked(
            self.conn.image.post(
                "/images",
                json=dict(
                    properties,
                    name=UPLOAD_NAME % name,
                    container_format=CONTAINER_FORMAT,
                    disk_format=DISK_FORMAT,
                    visibility="private",
                ),
            )
        )
        try:
            with open(filename, "rb") as data:
                self._checked(self.conn.image.put("/images/%s/file" % created["id"], data=data, headers=DATA_HEADERS))
            digests = check.digests()
            uploaded = self.image(created["id"])
            if uploaded.get("checksum") != digests["md5"]:
                raise GlanceError(
                    "Glance stored image %s with checksum %s, but %s has md5 %s: the upload was corrupted on the way. "
                    "The image was deleted; run again."
                    % (created["id"], uploaded.get("checksum"), filename, digests["md5"])
                )
            named = {
                "name": name,
                "owner_specified.openstack.md5": digests["md5"],
                "owner_specified.openstack.sha256": digests["sha256"],
                "owner_specified.openstack.object": "images/%s" % name,
            }
            return self.patch(created["id"], metadata_patch(uploaded, visibility, named))
        except BaseException:
            try:
                self.delete(created["id"])
            except Exception:
                pass
            raise

    def upload(self, name, filename, digests, visibility, properties):
        """Create the image and stream the file into it; return its record."""
        created = self.conn.image.create_image(
            name,
            filename=filename,
            md5=digests["md5"],
            sha256=digests["sha256"],
            container_format=CONTAINER_FORMAT,
            disk_format=DISK_FORMAT,
            meta=dict(properties, visibility=visibility),
            allow_duplicates=True,
            disable_vendor_agent=False,
            validate_checksum=True,
        )
        return self.image(created.id)

    def patch(self, image_id, operations):
        return self._checked(self.conn.image.patch("/images/%s" % image_id, json=operations, headers=PATCH_HEADERS))

    def delete(self, image_id):
        self.conn.image.delete_image(image_id, ignore_missing=True)


class VHDImageModule(BaseModule):
    """The module: read, decide, apply (unless in check mode), report."""

    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        filename=dict(type="path"),
        visibility=dict(type="str", choices=["public", "private", "shared", "community"], default="public"),
        properties=dict(type="dict", default={}),
        wait_timeout=dict(type="int", default=60),
        api_timeout=dict(type="int", default=60),
        cloud=dict(type="raw", no_log=True),
        auth_type=dict(type="str"),
        auth=dict(type="dict", no_log=True),
        region_name=dict(type="str"),
        interface=dict(type="str", choices=["public", "internal", "admin"], aliases=["endpoint_type"]),
        validate_certs=dict(type="bool", aliases=["verify"]),
        ca_cert=dict(type="path", aliases=["cacert"]),
    )
    module_kwargs = dict(required_if=[("state", "present", ["filename"])], supports_check_mode=True)

    @property
    def required_libraries(self):
        return (("openstacksdk", SDK_IMPORT_ERROR if openstack is None else None),)

    def __init__(self):
        super(VHDImageModule, self).__init__()
        self.module = self.ansible
        self.step = "list the images"

    def check_params(self):
        if self.params["api_timeout"] < 1:
            raise ModuleError("api_timeout must be at least 1 second, not %d." % self.params["api_timeout"])

    def run(self):
        try:
            return self._run()
        except (VHDImageError, GlanceError) as error:
            raise ModuleError(to_native(error))

    def _run(self):
        present = self.params["state"] == "present"
        properties = desired_properties(self.params["properties"]) if present else {}
        if present:
            check_head(self.params["filename"])  # a qcow2, raw or missing file: refused before Glance is asked
        settings = connection_settings(self.params)
        mask_only_secrets(self.module, settings)
        glance = Glance(settings, self.params["api_timeout"])
        try:
            return self._converge(glance, present, properties)
        except ksa_exceptions.Unauthorized as error:
            raise GlanceError(
                "%s refused the credentials: %s. Check the user name, password (or token) and project in auth, "
                "the cloud's clouds.yaml entry, or the OS_* variables." % (glance.where, str(error).rstrip("."))
            )
        except ksa_exceptions.ConnectTimeout as error:
            raise GlanceError(
                "%s did not answer within %d s (api_timeout) when the module tried to %s for image %s: %s. Check that "
                "it runs; raise api_timeout if it is that slow."
                % (glance.where, self.params["api_timeout"], self.step, self.params["name"], str(error).rstrip("."))
            )
        except (sdk_exceptions.SDKException, ksa_exceptions.ClientException) as error:
            raise GlanceError(
                "%s: could not %s for image %s: %s" % (glance.where, self.step, self.params["name"], error)
            )

    def _digests_first(self, images):
        """Whether the file's digests decide what to do: an image of the name may hold the file already (or check
        mode must tell). Otherwise the file is certainly uploaded, and checked while it uploads."""
        size = os.path.getsize(self.params["filename"])
        return self.module.check_mode or any(may_hold(image, size) for image in images)

    def _converge(self, glance, present, properties):
        name, visibility = self.params["name"], self.params["visibility"]
        images = glance.images_when_up(name, self.params["wait_timeout"])
        # Uploads an interrupted earlier run left (private, never named): deleted with the other extras.
        leftovers = glance.images(UPLOAD_NAME % name)
        digests = None
        if present and self._digests_first(images):
            # One pass: the upload's digests and each algorithm by which Glance hashed an image of the name.
            algorithms = set(DIGESTS) | set(image["os_hash_algo"] for image in images if image.get("os_hash_algo"))
            digests = inspect_vhd_tgz(self.params["filename"], sorted(algorithms))["digests"]
        if present and digests is None:
            todo = dict(keep=None, patch=[], delete=list(images))
        else:
            todo = plan(images, digests, visibility, properties)
        todo["delete"] += leftovers
        self._refuse_protected(todo["delete"])
        keep, uploaded = todo["keep"], present and todo["keep"] is None
        changed = uploaded or bool(todo["patch"] or todo["delete"])
        if self.module.check_mode:
            after = self._predicted(keep, todo["patch"], digests, properties)
            image = keep
        else:
            after = image = self._apply(glance, todo, digests, visibility, properties)
        return dict(
            changed=changed,
            uploaded=uploaded,
            deleted=[old["id"] for old in todo["delete"]],
            image=image or {},
            diff=dict(
                before=dict(images=[image_view(old, properties) for old in images]),
                after=dict(images=[image_view(after, properties)] if after else []),
            ),
        )

    def _refuse_protected(self, images):
        protected = [image["id"] for image in images if image.get("protected")]
        if protected:
            raise GlanceError(
                "Image %s %s is protected and would have to be deleted: unprotect it first (openstack image set "
                "--unprotected %s), or give the new image another name. Nothing was changed."
                % (self.params["name"], ", ".join(protected), protected[0])
            )

    def _apply(self, glance, todo, digests, visibility, properties):
        """Upload or patch the image to keep, then delete the others: the name never disappears."""
        keep = todo["keep"]
        if keep is None and self.params["state"] == "present":
            self.step = "upload %s" % self.params["filename"]
            if digests is None:
                check = BackgroundCheck(self.params["filename"])
                keep = glance.upload_while_checking(
                    self.params["name"], self.params["filename"], check, visibility, properties
                )
            else:
                keep = glance.upload(self.params["name"], self.params["filename"], digests, visibility, properties)
        elif todo["patch"]:
            self.step = "update the properties and visibility"
            keep = glance.patch(keep["id"], todo["patch"])
        for image in todo["delete"]:
            self.step = "delete the old image %s" % image["id"]
            glance.delete(image["id"])
        return keep

    def _predicted(self, keep, patch, digests, properties):
        """The record of the image after the run, as far as check mode can tell; None for state=absent."""
        if digests is None:
            return None
        if keep is None:
            return dict(
                properties,
                name=self.params["name"],
                status="active",
                container_format=CONTAINER_FORMAT,
                disk_format=DISK_FORMAT,
                checksum=digests["md5"],
                visibility=self.params["visibility"],
            )
        return dict(keep, **dict((operation["path"][1:], operation["value"]) for operation in patch))


def main():
    VHDImageModule()()


if __name__ == "__main__":
    main()
