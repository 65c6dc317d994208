"""The throwaway GPG signing key of the tests and the bed (one way to make it): a key that can sign, no
passphrase, no expiry, in a home of its own."""

import os
import subprocess


def signing_key(home, name="xenserver.openstack test"):
    """Make the key in ``home`` unless it is there; return its fingerprint. The agent gpg started is stopped."""
    gpg = ["gpg", "--batch", "--homedir", str(home)]
    if not os.path.isdir(home):
        os.makedirs(str(home), mode=0o700)
        subprocess.run([*gpg, "--passphrase", "", "--quick-gen-key", name, "rsa2048", "sign", "never"], check=True)
        stop_agent(home)
    listing = subprocess.run([*gpg, "--with-colons", "--list-secret-keys"], capture_output=True, text=True, check=True)
    return next(line.split(":")[9] for line in listing.stdout.splitlines() if line.startswith("fpr:"))


def stop_agent(home):
    """Stop the gpg-agent of ``home`` (signing starts it again when needed)."""
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, check=False)
