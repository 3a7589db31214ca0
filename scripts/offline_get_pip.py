"""Offline stand-in for the get-pip.py script ansible-test downloads from the internet.

ansible-test bootstraps pip in each sanity venv by running get-pip.py with pip install
options (e.g. ``--disable-pip-version-check pip==24.2 --no-setuptools``). Here the internet is
closed but PyPI is reachable, through a TLS proxy whose CA only the system bundle trusts.
ansible-test runs pip with ``PIP_CONFIG_FILE=/dev/null`` and a scrubbed environment, so the
machine's pip.conf (which names that bundle) is not read. So: seed pip from the interpreter's
bundled wheel (ensurepip), make this throwaway venv's pip use the system CA bundle, then let
pip install exactly what get-pip was asked for.
"""

import ensurepip
import os
import site
import ssl
import subprocess
import sys

# get-pip's own switches; plain pip does not know them.
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

bundle = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
if os.path.exists(bundle):
    # A .pth line runs at interpreter start: every later pip run in this venv sees PIP_CERT.
    with open(os.path.join(site.getsitepackages()[0], "aiclipse_system_ca.pth"), "w") as pth:
        pth.write(f"import os; os.environ.setdefault('PIP_CERT', {bundle!r})\n")
    os.environ.setdefault("PIP_CERT", bundle)

ensurepip.bootstrap(upgrade=True)
args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
