"""The throwaway GPG signing key of the tests and the bed (one way to make it): a key that can sign, no
passphrase, no expiry, in a home of its own."""

import os
import shutil
import subprocess


def signing_key(home, name="xenserver.openstack test"):
    """Make the key in ``home`` unless it is there; return its fingerprint. The agent gpg started is stopped.

    A home that a killed run left behind (a key half made, or the socket of an agent that was killed with it, on
    which gpg then reads "End of file") is made anew.
    """
    gpg = ["gpg", "--batch", "--homedir", str(home)]
    listing = None
    for fresh in (not os.path.isdir(str(home)), True):
        if fresh:
            shutil.rmtree(str(home), ignore_errors=True)
            os.makedirs(str(home), mode=0o700)
            subprocess.run([*gpg, "--passphrase", "", "--quick-gen-key", name, "rsa2048", "sign", "never"], check=True)
            stop_agent(home)
        listing = subprocess.run(
            [*gpg, "--with-colons", "--list-secret-keys"], capture_output=True, text=True, check=False
        )
        found = [line.split(":")[9] for line in listing.stdout.splitlines() if line.startswith("fpr:")]
        if listing.returncode == 0 and found:
            return found[0]
        stop_agent(home)
    raise RuntimeError("no signing key could be made in %s: %s" % (home, listing.stderr.strip()))


def stop_agent(home):
    """Stop the gpg-agent of ``home`` (signing starts it again when needed)."""
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, check=False)
