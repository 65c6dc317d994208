"""Reading update (supplemental pack) metadata out of an uploaded VDI."""

import yaml

MAX_MANIFEST = 1 << 20


def read_update_from_vdi(path):
    """Return ``dict(uuid, name_label, name_description, version, key, after_apply_guidance,
    installation_size, plugins={filename: bytes})`` for the update stored in the VDI file ``path``.

    For now the VDI body must be a small JSON or YAML manifest with those keys (``plugins`` maps file names
    to file contents as text); a parser for real update ISOs belongs here and returns the same dict.
    Raises ``ValueError(info)`` for anything that is not an update (xapi: ``INVALID_UPDATE [info]``).
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_MANIFEST + 1)
    except OSError:
        raise ValueError("the update VDI has no content") from None
    try:
        doc = yaml.safe_load(data.decode("utf-8")) if len(data) <= MAX_MANIFEST else None
    except (UnicodeDecodeError, yaml.YAMLError):
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("name_label"), str):
        raise ValueError("not a valid update: no update metadata found")
    plugins = doc.get("plugins") or {}
    if not isinstance(plugins, dict) or not all(isinstance(v, str) for v in plugins.values()):
        raise ValueError("not a valid update: plugins must map file names to text")
    guidance = doc.get("after_apply_guidance") or []
    return {
        "uuid": str(doc.get("uuid") or ""),
        "name_label": doc["name_label"],
        "name_description": str(doc.get("name_description", "")),
        "version": str(doc.get("version", "")),
        "key": str(doc.get("key", "")),
        "after_apply_guidance": [str(g) for g in guidance],
        "installation_size": str(doc.get("installation_size", len(data))),
        "plugins": {str(name): text.encode("utf-8") for name, text in plugins.items()},
    }
