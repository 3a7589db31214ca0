"""The models role end to end: manifests -> aria2_batch (nginx origin) and r2_fetch (moto).

Real ansible-playbook runs of aiclipse.comfyui.models against the harness servers, in the
foreground (waits, fails listing every failure) and in the background (async jobs that outlive
the play), with the settings given the way a pod gets them: environment variables.
"""

import hashlib
import json
import os
import time

import pytest

from harness.ansible_run import run_playbook
from harness.nginx import write_file
from harness.s3 import ACCESS_KEY, SECRET_KEY
from harness.workflows import loader_workflow

# The harness origin knows one token; which source gets which token is proved in test_model_downloads.py.
HF_TOKEN = CIVITAI_TOKEN = "role-test-token-0123456789"
SETTINGS = (
    "DOWNLOAD_MODELS",
    "DOWNLOAD_IN_FOREGROUND",
    "TEMPLATE_TYPE",
    "MODELS_MANIFEST",
    "HF_TOKEN",
    "CIVITAI_TOKEN",
    "HF_ENDPOINT",
    "CIVITAI_ENDPOINT",
    "R2_ACCESS_KEY_ID",
    "R2_SECRET_ACCESS_KEY",
    "R2_ACCOUNT_ID",
    "R2_BUCKET",
    "R2_ENDPOINT_URL",
    "DEFAULT_WORKFLOW",
    "PROVISION_FROM_WORKFLOWS",
)


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Pod:
    """A vault in tmp_path and the pod settings (environment) the role reads."""

    def __init__(self, tmp_path):
        self.root = tmp_path
        self.vault = tmp_path / "vault"
        self.vault.mkdir()
        self.async_dir = tmp_path / "async"
        self.playbook = tmp_path / "play.yml"
        self.playbook.write_text(
            "- name: Models\n  hosts: all\n  gather_facts: false\n  roles:\n    - role: aiclipse.comfyui.models\n"
        )
        self.env = {name: "" for name in SETTINGS}
        self.env["ANSIBLE_ASYNC_DIR"] = str(self.async_dir)
        # ansible's own temporary files (AnsiballZ payloads) land here, where tests can scan them.
        self.env["ANSIBLE_REMOTE_TEMP"] = str(tmp_path / "ansible-remote-tmp")
        self.env["ANSIBLE_LOCAL_TEMP"] = str(tmp_path / "ansible-local-tmp")
        # The pod's env file the download modules read secrets from (never the machine's /etc).
        self.env_file = tmp_path / "rp_environment"
        self.extra_vars = {}

    @property
    def models(self):
        return self.vault / "models"

    @property
    def log(self):
        return self.vault / "logs" / "models.log"

    def manifest(self, name, text):
        path = self.root / name if name != "user" else self.vault / "models_manifest.txt"
        path.write_text(text)
        return path

    def run(self, check=False, verbosity=0, vault=True, json_output=True, **env):
        extra_vars = {"ansible_python_interpreter": "{{ ansible_playbook_python }}"}
        if vault:
            extra_vars["aiclipse_vault"] = str(self.vault)
            extra_vars["models_env_file"] = str(self.env_file)
        extra_vars.update(self.extra_vars)
        return run_playbook(
            self.playbook,
            inventory="localhost,",
            check=check,
            verbosity=verbosity,
            json_output=json_output,
            extra_vars=extra_vars,
            env={**self.env, **env},
            args=("-c", "local"),
            timeout=300,
        )

    def wait_for_jobs(self, timeout=120):
        """Results of every async job once all have finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = [p for p in self.async_dir.glob("*") if p.is_file() and not p.name.endswith(".tmp")]
            results = []
            for job in jobs:
                try:
                    results.append(json.loads(job.read_text()))
                except ValueError:
                    break  # still being written
            # async_wrapper replaces its {"started": ...} record with the module's result.
            if jobs and len(results) == len(jobs) and all("started" not in r for r in results):
                return results
            time.sleep(0.5)
        raise AssertionError(f"background jobs did not finish: {list(self.async_dir.glob('*'))}")


@pytest.fixture
def pod(tmp_path):
    return Pod(tmp_path)


@pytest.fixture
def served(tmp_path):
    """Files for a private origin: an HF repo sub-path, a CivitAI version and a plain file."""
    root = tmp_path / "served"
    files = {
        "hf": write_file(root / "hf/org/repo/split_files/vae/ae.safetensors", 300_000, seed=1),
        "civitai": write_file(root / "civitai/4242", 200_000, seed=2),
        "plain": write_file(root / "upscaler.pth", 100_000, seed=3),
    }
    return root, files


def bucket(s3, objects):
    client = s3.client()
    client.create_bucket(Bucket="models")
    out = {}
    for key, size in objects.items():
        body = os.urandom(size)
        client.put_object(Bucket="models", Key=key, Body=body)
        out[key] = hashlib.sha256(body).hexdigest()
    return out


def r2_env(s3):
    return {
        "R2_ACCESS_KEY_ID": ACCESS_KEY,
        "R2_SECRET_ACCESS_KEY": SECRET_KEY,
        "R2_ENDPOINT_URL": s3.endpoint,
        "R2_BUCKET": "models",
    }


def assert_no_secret(*texts):
    for text in texts:
        for secret in (HF_TOKEN, SECRET_KEY):
            assert secret not in text


def test_foreground_all_sources_check_mode_then_download_then_nothing_to_do(pod, served, make_origin, s3):
    root, files = served
    origin = make_origin(root, token=CIVITAI_TOKEN)
    r2 = bucket(s3, {"loras/style.safetensors": 150_000})
    # The user's manifest: one entry the template replaces, one only the user has.
    pod.manifest(
        "user",
        "# mine\nurl|http://127.0.0.1:1/gone.pth|upscaler.pth|upscale_models\n"
        f"url|{origin.url}/public/upscaler.pth|mine.pth|upscale_models\n",
    )
    template = pod.manifest(
        "flux_models.txt",
        (
            f"hf|org/repo|split_files/vae/ae.safetensors|vae|{files['hf']}\n"
            f"civitai|4242|style_civitai.safetensors|loras\n"
            f"direct|{origin.url}/public/upscaler.pth|upscaler.pth|upscale_models|{files['plain']}\n"
            f"r2|loras/style.safetensors|style.safetensors|loras|{r2['loras/style.safetensors']}\n"
        ),
    )
    env = {
        "DOWNLOAD_IN_FOREGROUND": "true",
        "MODELS_MANIFEST": str(template),
        "HF_TOKEN": HF_TOKEN,
        "CIVITAI_TOKEN": CIVITAI_TOKEN,
        "HF_ENDPOINT": f"{origin.url}/hf",
        "CIVITAI_ENDPOINT": origin.url,
        **r2_env(s3),
    }
    wanted = {
        pod.models / "vae/ae.safetensors": files["hf"],
        pod.models / "loras/style_civitai.safetensors": files["civitai"],
        pod.models / "upscale_models/upscaler.pth": files["plain"],
        pod.models / "upscale_models/mine.pth": files["plain"],
        pod.models / "loras/style.safetensors": r2["loras/style.safetensors"],
    }

    checked = pod.run(check=True, **env)
    assert checked.rc == 0, checked.stdout + checked.stderr
    assert not pod.models.exists() or not any(p.is_file() for p in pod.models.rglob("*"))

    run = pod.run(verbosity=3, **env)
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-4000:]
    for path, digest in wanted.items():
        assert sha(path) == digest, path
    assert sorted(p.relative_to(pod.models).as_posix() for p in pod.models.rglob("*") if p.is_file()) == sorted(
        p.relative_to(pod.models).as_posix() for p in wanted
    )
    # Each source got its own token, and a plain URL none.
    log = origin.log_lines()
    assert any("/api/download/models/4242 302" in line and f"Bearer {CIVITAI_TOKEN}" in line for line in log)
    assert any(
        "/hf/org/repo/resolve/main/split_files/vae/ae.safetensors 302" in line and f"Bearer {HF_TOKEN}" in line
        for line in log
    )
    public = [line for line in log if "/public/" in line]
    assert public and not any("Bearer" in line for line in public), public
    summary = pod.log.read_text()
    for path in wanted:
        assert path.name in summary
    plan = (pod.vault / "logs/models-plan.txt").read_text()
    assert f"vae/ae.safetensors  <-  huggingface org/repo  ({template}:1)" in plan
    assert f"replaced: upscale_models/upscaler.pth from {pod.vault / 'models_manifest.txt'}:2 by {template}:3" in plan
    assert_no_secret(
        run.stdout,
        run.stderr,
        summary,
        *(p.read_text(errors="replace") for p in (pod.vault / ".state").rglob("*") if p.is_file()),
    )

    again = pod.run(**env)
    assert again.rc == 0 and again.changed == 0, again.stdout[-3000:]


def test_background_returns_at_once_and_jobs_finish_with_a_summary(pod, tmp_path, make_origin, s3):
    root = tmp_path / "served"
    big = write_file(root / "big.safetensors", 1_500_000, seed=5)
    # About 23 s for the big file: longer than the play takes even on a loaded machine.
    origin = make_origin(root, limit_rate="64k")
    r2 = bucket(s3, {"loras/bg.safetensors": 120_000})
    pod.manifest(
        "user",
        f"url|{origin.url}/public/big.safetensors|big.safetensors|checkpoints|{big}\n"
        f"r2|loras/bg.safetensors|bg.safetensors|loras\n",
    )
    env = {"HF_TOKEN": HF_TOKEN, **r2_env(s3)}

    started = time.monotonic()
    run = pod.run(**env)
    elapsed = time.monotonic() - started
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert not (pod.models / "checkpoints/big.safetensors").exists(), (
        f"the play waited for a throttled download ({elapsed:.1f}s): it must run in the background"
    )

    results = pod.wait_for_jobs()
    assert len(results) == 2
    assert all(not r.get("failed") for r in results), results
    assert sha(pod.models / "checkpoints/big.safetensors") == big
    assert sha(pod.models / "loras/bg.safetensors") == r2["loras/bg.safetensors"]
    summary = pod.log.read_text()
    assert "big.safetensors" in summary and "bg.safetensors" in summary
    assert_no_secret(run.stdout, run.stderr, summary, *(p.read_text(errors="replace") for p in pod.async_dir.glob("*")))

    again = pod.run(**env)
    assert again.rc == 0 and again.changed == 0, again.stdout[-3000:]


def test_foreground_fails_listing_every_failure_and_keeps_the_rest(pod, served, make_origin, s3):
    root, files = served
    origin = make_origin(root)
    pod.manifest(
        "user",
        (
            f"url|{origin.url}/public/upscaler.pth|good.pth|upscale_models\n"
            f"url|{origin.url}/public/missing.pth|missing.pth|upscale_models\n"
            "r2|hk_v1_final.safetensors|hk_v1_final.safetensors|loras\n"
        ),
    )
    run = pod.run(DOWNLOAD_IN_FOREGROUND="true")
    assert run.rc != 0
    out = run.stdout
    assert "2 model(s) failed" in out
    assert "upscale_models/missing.pth" in out
    assert "loras/hk_v1_final.safetensors: r2 key 'hk_v1_final.safetensors' names no bucket" in out
    assert "NOT FETCHED: loras/hk_v1_final.safetensors" in (pod.vault / "logs/models-plan.txt").read_text()
    assert sha(pod.models / "upscale_models/good.pth") == files["plain"]
    assert not (pod.models / "upscale_models/missing.pth").exists()


def test_bad_manifest_stops_before_any_download(pod, served, make_origin):
    root, _catalog = served
    origin = make_origin(root)
    user = pod.manifest(
        "user", f"url|{origin.url}/public/upscaler.pth|ok.pth|upscale_models\nhf|org/repo|x.safetensors|../../etc\n"
    )
    run = pod.run(DOWNLOAD_IN_FOREGROUND="true")
    assert run.rc != 0
    assert f"{user}:2: subdir '../../etc' contains '..'" in run.stdout
    assert origin.log_lines() == []
    assert not pod.models.exists()


def test_download_models_false_skips_even_a_broken_manifest(pod):
    pod.manifest("user", "this is not a manifest\n")
    run = pod.run(DOWNLOAD_MODELS="false")
    assert run.rc == 0 and run.changed == 0
    assert "DOWNLOAD_MODELS is false" in run.stdout
    assert not pod.models.exists() and not pod.async_dir.exists()
    # The role's argument spec and defaults stand without aiclipse_vault (collection default).
    bare = pod.run(vault=False, DOWNLOAD_MODELS="false")
    assert bare.rc == 0, bare.stdout[-3000:]


# -- a failed download is never a green run -------------------------------------------------


def lines_of(run):
    """The role's one-line-per-model report, as printed by the foreground run."""
    return run.stdout


def job_by_module(results):
    """Async results keyed by which downloader ran (HTTP results have no bucket-style names)."""
    jobs = {}
    for result in results:
        args = result.get("invocation", {}).get("module_args", {})
        jobs["r2" if "objects" in args else "http"] = result
    return jobs


@pytest.mark.parametrize("foreground", [True, False], ids=["foreground", "background"])
def test_missing_r2_credentials_fail_every_r2_model_and_the_rest_downloads(pod, served, make_origin, s3, foreground):
    root, files = served
    origin = make_origin(root)
    s3.client().create_bucket(Bucket="models")
    pod.manifest(
        "user",
        f"url|{origin.url}/public/upscaler.pth|good.pth|upscale_models\n"
        "r2|loras/a.safetensors|a.safetensors|loras\n"
        "r2|loras/b.safetensors|b.safetensors|loras\n",
    )
    env = {"R2_ENDPOINT_URL": s3.endpoint, "R2_BUCKET": "models", "DOWNLOAD_IN_FOREGROUND": str(foreground).lower()}
    run = pod.run(**env)
    if foreground:
        assert run.rc != 0, run.stdout[-3000:]
        assert "loras/a.safetensors: R2 credentials missing" in run.stdout, run.stdout[-3000:]
        assert "loras/b.safetensors: R2 credentials missing" in run.stdout
    else:
        assert run.rc == 0, run.stdout[-3000:]
        jobs = job_by_module(pod.wait_for_jobs())
        r2 = jobs["r2"]
        assert r2["failed"] is True and "R2 credentials missing" in r2["msg"]
        assert [(r["name"], r["status"]) for r in r2["results"]] == [
            ("loras/a.safetensors", "failed"),
            ("loras/b.safetensors", "failed"),
        ]
        assert all("R2 credentials missing" in r["reason"] for r in r2["results"])
    log = pod.log.read_text()
    assert "R2 credentials missing" in log and "loras/a.safetensors" in log and "loras/b.safetensors" in log
    assert sha(pod.models / "upscale_models/good.pth") == files["plain"]


@pytest.mark.parametrize("foreground", [True, False], ids=["foreground", "background"])
def test_disk_preflight_downloads_what_fits_and_fails_the_rest(pod, fault_server, small_tmpfs, foreground):
    small_tmpfs("3m", name="vault")
    url = fault_server.url
    pod.manifest(
        "user",
        f"url|{url}/files/c.bin|c.bin|vae|{fault_server.catalog['c.bin'][1]}\n"
        f"url|{url}/files/big.bin|big.bin|checkpoints\n"
        f"url|{url}/files/a.bin|a.bin|loras\n",
    )
    run = pod.run(DOWNLOAD_IN_FOREGROUND=str(foreground).lower())
    if foreground:
        assert run.rc != 0, run.stdout[-3000:]
        assert "checkpoints/big.bin: not enough disk space: needs 6.00 MB" in run.stdout, run.stdout[-3000:]
    else:
        assert run.rc == 0
        (job,) = pod.wait_for_jobs()
        statuses = {r["name"]: (r["status"], r["reason"]) for r in job["results"]}
        assert statuses["checkpoints/big.bin"][0] == "failed"
        assert "needs 6.00 MB" in statuses["checkpoints/big.bin"][1]
        assert statuses["vae/c.bin"][0] == statuses["loras/a.bin"][0] == "downloaded"
    assert (pod.models / "vae/c.bin").exists() and (pod.models / "loras/a.bin").exists()
    assert not (pod.models / "checkpoints/big.bin").exists()
    assert "needs 6.00 MB" in pod.log.read_text()
    big_gets = [r for r in fault_server.requests if r.method == "GET" and r.path.endswith("big.bin")]
    assert big_gets == [], "a file that cannot fit is not downloaded at all"


@pytest.mark.parametrize("foreground", [True, False], ids=["foreground", "background"])
def test_a_full_disk_while_writing_the_ledger_keeps_every_result(pod, fault_server, small_tmpfs, foreground):
    small_tmpfs("2m", name="vault")
    size, digest = fault_server.catalog["a.bin"]
    model = pod.models / "loras/a.bin"
    model.parent.mkdir(parents=True)
    model.write_bytes((fault_server.files_dir / "a.bin").read_bytes())  # the user's own copy, unrecorded
    state = pod.vault / ".state/models"
    state.mkdir(parents=True)
    # A ledger of other models, big enough that rewriting it cannot fit on the disk that is left.
    entries = {f"/elsewhere/model-{n:06d}.bin": {"size": n, "mtime_ns": n} for n in range(24000)}
    (state / "ledger.json").write_text(json.dumps({"version": 1, "entries": entries}))
    with open(pod.vault / "filler", "wb") as handle:
        try:
            handle.write(os.urandom(4 * 1024 * 1024))
        except OSError:
            pass
    pod.manifest("elsewhere.txt", "")
    pod.extra_vars["models_log_file"] = str(pod.root / "logs/models.log")
    pod.extra_vars["models_plan_file"] = str(pod.root / "logs/models-plan.txt")
    pod.extra_vars["models_user_manifest"] = str(pod.root / "user.txt")
    (pod.root / "user.txt").write_text(f"url|{fault_server.url}/files/a.bin|a.bin|loras|{digest}\n")
    run = pod.run(DOWNLOAD_IN_FOREGROUND=str(foreground).lower())
    assert "Traceback" not in run.stdout + run.stderr
    if foreground:
        assert run.rc == 0, run.stdout[-3000:]
        assert "loras/a.bin: present" in run.stdout, run.stdout[-3000:]
        assert "ledger not updated" in run.stdout
    else:
        assert run.rc == 0
        (job,) = pod.wait_for_jobs()
        (result,) = job["results"]
        assert result["status"] == "present" and "ledger not updated" in result["reason"], result
    assert "ledger not updated" in (pod.root / "logs/models.log").read_text()
    assert sha(model) == digest


@pytest.mark.parametrize("port", ["99999", "abc"])
@pytest.mark.parametrize("foreground", [True, False], ids=["foreground", "background"])
def test_a_url_with_a_bad_port_names_its_line_and_downloads_nothing(pod, served, make_origin, port, foreground):
    root, _files = served
    origin = make_origin(root)
    user = pod.manifest(
        "user",
        f"url|{origin.url}/public/upscaler.pth|good.pth|upscale_models\n"
        f"url|http://127.0.0.1:{port}/x.pth|bad.pth|upscale_models\n",
    )
    run = pod.run(DOWNLOAD_IN_FOREGROUND=str(foreground).lower())
    assert run.rc != 0
    assert f"{user}:2: url 'http://127.0.0.1:{port}/x.pth'" in run.stdout, run.stdout[-3000:]
    assert origin.log_lines() == []
    assert not pod.async_dir.exists() or not list(pod.async_dir.iterdir())


# -- secrets stay on the pod, out of ansible's files -----------------------------------------


def watch_background_jobs(pod, secrets, allowed=()):
    """Scan ansible's temp and async dirs, the vault and every process's argv for `secrets` while
    the pod's background download jobs run; (scans, [leaks], job results). `allowed`: files the
    user wrote or that are meant to hold them (0600)."""
    from harness.secret_scan import argv_holding, files_holding

    watched = [pod.env["ANSIBLE_REMOTE_TEMP"], pod.env["ANSIBLE_LOCAL_TEMP"], pod.async_dir, pod.vault]
    scans, leaks = 0, []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        leaks += [f for f in files_holding(secrets, watched) if str(f[0]) not in allowed] + argv_holding(secrets)
        scans += 1
        jobs = [p for p in pod.async_dir.glob("*") if p.is_file()]
        if jobs and all('"started"' not in p.read_text(errors="replace") for p in jobs):
            break
        time.sleep(0.2)
    return scans, leaks, pod.wait_for_jobs()


def test_no_secret_in_any_file_or_argv_while_background_jobs_run(pod, tmp_path, make_origin, s3):
    from harness.throttle_proxy import ThrottleProxy

    root = tmp_path / "served"
    big = write_file(root / "hf/org/repo/big.safetensors", 3_000_000, seed=9)
    origin = make_origin(root, token=HF_TOKEN, limit_rate="500k")
    r2 = bucket(s3, {"loras/slow.safetensors": 3_000_000})
    pod.manifest(
        "user",
        f"hf|org/repo|big.safetensors|checkpoints|{big}\n"
        f"r2|loras/slow.safetensors|slow.safetensors|loras|{r2['loras/slow.safetensors']}\n",
    )
    secrets = [HF_TOKEN, SECRET_KEY]
    with ThrottleProxy(s3.port, 500_000) as proxy:
        env = {**r2_env(s3), "R2_ENDPOINT_URL": proxy.endpoint, "HF_TOKEN": HF_TOKEN, "HF_ENDPOINT": f"{origin.url}/hf"}
        run = pod.run(**env)
        assert run.rc == 0, run.stdout[-3000:]
        scans, leaks, results = watch_background_jobs(pod, secrets)
    assert scans >= 3, "the jobs finished before they could be watched"
    assert leaks == [], leaks
    assert all(not r.get("failed") for r in results), results
    assert sha(pod.models / "checkpoints/big.safetensors") == big
    assert_no_secret(run.stdout, run.stderr, pod.log.read_text())


def test_tokens_and_r2_keys_come_from_the_pod_env_file_when_the_environment_lacks_them(pod, tmp_path, make_origin, s3):
    """The fleet case: over SSH the module's environment has no pod settings; pod_env's file has."""
    root = tmp_path / "served"
    private = write_file(root / "hf/org/repo/p.safetensors", 200_000, seed=4)
    origin = make_origin(root, token=HF_TOKEN)
    r2 = bucket(s3, {"loras/k.safetensors": 100_000})
    pod.manifest(
        "user",
        f"hf|org/repo|p.safetensors|checkpoints|{private}\n"
        f"r2|loras/k.safetensors|k.safetensors|loras|{r2['loras/k.safetensors']}\n",
    )
    pod.env_file.write_text(
        f"export HF_TOKEN='{HF_TOKEN}'\nexport R2_ACCESS_KEY_ID='{ACCESS_KEY}'\n"
        f"export R2_SECRET_ACCESS_KEY='{SECRET_KEY}'\n"
    )
    pod.env_file.chmod(0o600)
    run = pod.run(
        DOWNLOAD_IN_FOREGROUND="true", HF_ENDPOINT=f"{origin.url}/hf", R2_ENDPOINT_URL=s3.endpoint, R2_BUCKET="models"
    )
    assert run.rc == 0, run.stdout[-3000:]
    assert sha(pod.models / "checkpoints/p.safetensors") == private
    assert sha(pod.models / "loras/k.safetensors") == r2["loras/k.safetensors"]
    assert_no_secret(run.stdout, run.stderr, pod.log.read_text())


def credentialed_urls(origin):
    """Two manifest lines with credentials in the URL: Basic auth as user:password@, and the
    token as a query parameter (CivitAI's ?token=)."""
    return (
        f"url|http://{origin.basic_user}:{origin.basic_password}@127.0.0.1:{origin.port}/basic/a.bin|a.bin|vae\n"
        f"url|{origin.url}/query/b.bin?token={origin.token}&v=1|b.bin|vae\n"
    )


def files_with(secrets, *roots):
    """[(path, mode)] of the files under roots holding one of secrets (AnsiballZ payloads unpacked)."""
    from harness.secret_scan import files_holding

    return sorted(set((path, oct(os.stat(path).st_mode & 0o777)) for path, _s in files_holding(secrets, roots)))


def test_credentials_in_manifest_urls_download_and_never_show(pod, tmp_path, make_origin):
    """user:password@ authenticates at its origin, ?token= reaches it, and neither appears in
    ansible's output at -vvv (default and json callbacks) nor in any file but the 0600 one."""
    root = tmp_path / "served"
    a = write_file(root / "a.bin", 200_000, seed=11)
    b = write_file(root / "b.bin", 200_000, seed=12)
    origin = make_origin(root, token="query-token-4455667788")
    pod.manifest("user", credentialed_urls(origin))
    secrets = [origin.basic_password, origin.token]
    for json_output in (True, False):
        run = pod.run(verbosity=3, json_output=json_output, DOWNLOAD_IN_FOREGROUND="true")
        assert run.rc == 0, (run.stdout + run.stderr)[-3000:]
        out = run.stdout + run.stderr
        assert [s for s in secrets if s in out] == [], "a URL credential is in ansible's output"
        assert "models_manifest.txt" in out and "***" in out  # the masked URL is what shows
    assert sha(pod.models / "vae/a.bin") == a and sha(pod.models / "vae/b.bin") == b
    held = files_with(secrets, pod.vault, pod.env["ANSIBLE_REMOTE_TEMP"], pod.env["ANSIBLE_LOCAL_TEMP"])
    manifest = str(pod.vault / "models_manifest.txt")
    assert [(p, m) for p, m in held if p != manifest] == [
        (str(pod.vault / ".state/models/secret-urls.json"), "0o600")
    ], held
    basic = [line for line in origin.log_lines() if line.startswith("GET /basic/")]
    assert basic and all('auth="Basic ' in line and (" 200 " in line or " 206 " in line) for line in basic), basic
    assert not any("Basic" in line for line in origin.log_lines() if f"port={origin.signed_port}" in line)


def test_credentials_in_manifest_urls_are_not_at_rest_while_the_background_job_runs(pod, tmp_path, make_origin):

    root = tmp_path / "served"
    a = write_file(root / "a.bin", 1_500_000, seed=13)
    b = write_file(root / "b.bin", 1_500_000, seed=14)
    origin = make_origin(root, token="query-token-1122334455", limit_rate="300k")
    pod.manifest("user", credentialed_urls(origin))
    secrets = [origin.basic_password, origin.token]
    run = pod.run()
    assert run.rc == 0, run.stdout[-3000:]
    allowed = {str(pod.vault / "models_manifest.txt"), str(pod.vault / ".state/models/secret-urls.json")}
    scans, leaks, results = watch_background_jobs(pod, secrets, allowed)
    assert scans >= 3, "the job finished before it could be watched"
    assert leaks == [], leaks
    assert all(not r.get("failed") for r in results), results
    assert sha(pod.models / "vae/a.bin") == a and sha(pod.models / "vae/b.bin") == b
    assert oct((pod.vault / ".state/models/secret-urls.json").stat().st_mode & 0o777) == "0o600"
    assert not any(s in pod.log.read_text() for s in secrets)


def test_a_downloader_that_cannot_start_in_the_background_names_every_model_in_the_log(pod, tmp_path, make_origin, s3):
    """No boto3 for the pod's Python: the R2 job fails before downloading anything, and the
    models log still says which model failed and why (the play itself cannot know)."""
    root = tmp_path / "served"
    write_file(root / "x.bin", 100_000, seed=1)
    origin = make_origin(root)
    bucket(s3, {"loras/a.safetensors": 1000, "loras/b.safetensors": 1000})
    pod.manifest(
        "user",
        f"url|{origin.url}/public/x.bin|x.bin|vae\n"
        "r2|loras/a.safetensors|a.safetensors|loras\nr2|loras/b.safetensors|b.safetensors|loras\n",
    )
    pod.extra_vars["ansible_python_interpreter"] = "/usr/bin/python3"  # the system Python has no boto3
    run = pod.run(**r2_env(s3))
    assert run.rc == 0, run.stdout[-3000:]
    results = pod.wait_for_jobs()
    r2_job = [r for r in results if any(e.get("name", "").startswith("loras/") for e in r.get("results") or [])]
    assert r2_job and all(e["status"] == "failed" and "boto3" in e["reason"] for e in r2_job[0]["results"]), results
    log = pod.log.read_text()
    for name in ("loras/a.safetensors", "loras/b.safetensors"):
        assert any(name in line and "boto3" in line for line in log.splitlines() if "failed" in line), log
    assert "r2_fetch: summary: 0 downloaded, 0 present, 2 failed" in log, log


def test_a_downloader_that_cannot_start_in_the_foreground_fails_naming_each_model(pod, tmp_path, make_origin, s3):
    root = tmp_path / "served"
    write_file(root / "x.bin", 100_000, seed=1)
    origin = make_origin(root)
    bucket(s3, {"loras/a.safetensors": 1000})
    pod.manifest("user", f"url|{origin.url}/public/x.bin|x.bin|vae\nr2|loras/a.safetensors|a.safetensors|loras\n")
    pod.extra_vars["ansible_python_interpreter"] = "/usr/bin/python3"
    run = pod.run(DOWNLOAD_IN_FOREGROUND="true", **r2_env(s3))
    assert run.rc != 0
    assert "loras/a.safetensors: " in run.stdout and "boto3" in run.stdout
    log = pod.log.read_text()  # "details in models.log" is true
    assert any("loras/a.safetensors" in line and "boto3" in line for line in log.splitlines()), log
    assert (pod.models / "vae/x.bin").is_file()


def downloaded_in_order(log_text):
    """Model names in the order the log says they were published."""
    return [
        line.split(" downloaded ", 1)[1].split(" ", 1)[0] for line in log_text.splitlines() if " downloaded " in line
    ]


def test_the_default_workflows_models_are_published_before_the_others(pod, tmp_path, make_origin):
    """The background queue puts what the image's default workflow needs first (manifest entries
    and workflow URLs alike), then the rest in plan order. One download at a time, each taking
    a few of the downloader's 0.5 s polls at the origin's rate, so the log's publish order is the
    queue's order."""
    root = tmp_path / "served"
    names = ["m1", "m2", "m3", "w", "x"]
    sums = {name: write_file(root / f"{name}.safetensors", 400_000, seed=number) for number, name in enumerate(names)}
    origin = make_origin(root, limit_rate="200k")
    url = {name: f"{origin.url}/public/{name}.safetensors" for name in names}
    folder = {"m1": "checkpoints", "m2": "loras", "m3": "checkpoints", "w": "vae", "x": "vae"}
    pod.manifest("user", "".join(f"url|{url[n]}|{n}.safetensors|{folder[n]}|{sums[n]}\n" for n in ("m1", "m2", "m3")))
    templates = tmp_path / "workflows"
    templates.mkdir()
    # default.json is the image's default although another workflow comes first by name.
    (templates / "another.json").write_text(
        loader_workflow(
            ("VAELoader", "x.safetensors", "vae", url["x"]), ("LoraLoader", "m2.safetensors", "loras", None)
        )
    )
    (templates / "default.json").write_text(
        loader_workflow(
            ("VAELoader", "w.safetensors", "vae", url["w"]),
            ("CheckpointLoaderSimple", "m3.safetensors", "checkpoints", None),
        )
    )
    pod.extra_vars.update(models_workflow_templates_dir=str(templates), models_http_max_concurrent_downloads=1)

    run = pod.run()
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "Queued first for the default workflow" in run.stdout, run.stdout[-3000:]
    results = pod.wait_for_jobs()
    assert all(not r.get("failed") for r in results), results

    order = downloaded_in_order(pod.log.read_text())
    default_models = ["checkpoints/m3.safetensors", "vae/w.safetensors"]
    rest = ["checkpoints/m1.safetensors", "loras/m2.safetensors", "vae/x.safetensors"]
    assert order == default_models + rest, pod.log.read_text()
    for name in names:
        assert sha(pod.models / folder[name] / f"{name}.safetensors") == sums[name]
    plan = (pod.vault / "logs" / "models-plan.txt").read_text()
    assert f"# queued first: the 2 model(s) the default workflow {templates / 'default.json'} needs" in plan, plan

    # DEFAULT_WORKFLOW names another template: its models lead the plan now.
    named = pod.run(DEFAULT_WORKFLOW="another.json", check=True)
    assert named.rc == 0, named.stdout[-3000:]
    assert f"default workflow {templates / 'another.json'}: loras/m2.safetensors, vae/x.safetensors." in named.stdout, (
        named.stdout[-3000:]
    )


def test_a_default_workflow_that_does_not_exist_is_a_warning_and_the_plan_order_stays(pod, tmp_path, make_origin):
    root = tmp_path / "served"
    digest = write_file(root / "a.safetensors", 10_000, seed=1)
    origin = make_origin(root)
    pod.manifest("user", f"url|{origin.url}/public/a.safetensors|a.safetensors|checkpoints|{digest}\n")
    pod.extra_vars.update(models_workflow_templates_dir=str(tmp_path / "no-workflows"))
    run = pod.run(DOWNLOAD_IN_FOREGROUND="true", DEFAULT_WORKFLOW="missing.json")
    assert run.rc == 0, run.stdout[-3000:]
    assert "missing.json does not exist; the models are queued in plan order" in run.stdout + run.stderr
    assert sha(pod.models / "checkpoints/a.safetensors") == digest
    # A default workflow outside the template folder that cannot be read: a warning naming it.
    broken = tmp_path / "elsewhere" / "broken.json"
    broken.parent.mkdir()
    broken.write_text("{not json")
    again = pod.run(DOWNLOAD_IN_FOREGROUND="true", DEFAULT_WORKFLOW=str(broken))
    assert again.rc == 0, again.stdout[-3000:]
    assert f"workflow {broken} is not read: invalid JSON" in again.stdout + again.stderr, again.stdout[-3000:]
