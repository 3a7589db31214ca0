"""The aiclipse.comfyui.runpod inventory plugin, run as users run it (`ansible-inventory -i
<dir>/runpod.yml`) against the loopback RunPod API stand-in (tests/harness/runpod_api.py), which
answers with the real API's shapes, checks the Bearer key and records every request.

What is attacked: the key (never in a URL, an output at -vvvv or a cache file), the pod's
secrets (never in host vars or the cache), the SSH endpoint (only a public 22/tcp mapping),
failures of every kind (a clear error and a failed run, never an empty green inventory), and
values from the API that look like templates (never rendered on the controller).
"""

import json

import pytest

from harness.runpod_api import RunPodApi, ansible_inventory, runpod_pod, write_inventory_config

KEY = "rpa_TEST0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
HF_SECRET = "hf_pod_secret_value_4711"
R2_SECRET = "r2-secret-access-key-0815"
URL_TOKEN = "ghp_url_embedded_token_42"


def fleet_pods():
    return [
        runpod_pod(
            "a1b2c3",
            "comfy-a",
            ssh_port=40122,
            gpu="RTX 4090",
            env={
                "TEMPLATE_TYPE": "sdxl",
                "COMFY_ARGS": "--lowvram --preview-method auto",
                "HF_TOKEN": HF_SECRET,
                "R2_SECRET_ACCESS_KEY": R2_SECRET,
                "CONFIG_REPO": f"https://me:{URL_TOKEN}@github.com/me/pods.git",
                "JUPYTER_PASSWORD": "jupyter-pass-1",
                "EQUALS": "a=b=c",
            },
        ),
        runpod_pod(
            "d4e5f6",
            "comfy-b",
            ssh_port=40123,
            gpu="RTX A6000",
            image="aiclipse/comfyui:flux",
            env={"TEMPLATE_TYPE": "flux"},
        ),
        runpod_pod("g7h8i9", "jupyter-notebook", ssh_port=40124, gpu="RTX 4090", image="runpod/pytorch:2.1"),
    ]


@pytest.fixture
def api():
    with RunPodApi(KEY, fleet_pods()) as server:
        yield server


def inventory_list(path, *args, **kwargs):
    proc = ansible_inventory(path, "--list", *args, api_key=KEY, **kwargs)
    assert proc.returncode == 0, proc.stderr
    # At -vvvv ansible prints its version and config first; the document starts at a "{" line.
    start = proc.stdout.index("{") if proc.stdout.startswith("{") else proc.stdout.index("\n{") + 1
    return plain(json.loads(proc.stdout[start:])), proc


def plain(value):
    """ansible-inventory marks strings that came from the API (untrusted, never templated) as
    {"__ansible_unsafe": "..."}; the values themselves."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def group_hosts(doc, group):
    return sorted(doc.get(group, {}).get("hosts", []))


# -- listing -------------------------------------------------------------------------------


def test_graph_lists_the_accounts_pods_in_pods_and_keyed_groups(api, tmp_path):
    config = write_inventory_config(
        tmp_path,
        api.url,
        keyed_groups=[
            {"key": "runpod_gpu", "prefix": "gpu"},
            {"key": "runpod_env.TEMPLATE_TYPE | default('none')", "prefix": "template"},
        ],
    )
    proc = ansible_inventory(config, "--graph", api_key=KEY)
    assert proc.returncode == 0, proc.stderr
    graph = proc.stdout
    for line in (
        "@pods:",
        "|--comfy-a",
        "|--comfy-b",
        "|--jupyter-notebook",
        "@gpu_RTX_4090:",
        "@gpu_RTX_A6000:",
        "@template_sdxl:",
        "@template_flux:",
        "@template_none:",
    ):
        assert line in graph, graph
    doc, _proc = inventory_list(config)
    assert group_hosts(doc, "gpu_RTX_4090") == ["comfy-a", "jupyter-notebook"]
    assert group_hosts(doc, "template_flux") == ["comfy-b"]


def test_host_vars_are_the_public_ssh_endpoint_and_what_runpod_says(api, tmp_path):
    doc, _proc = inventory_list(write_inventory_config(tmp_path, api.url))
    host = doc["_meta"]["hostvars"]["comfy-a"]
    # The public mapping of port 22, not the HTTP proxy port the pod also lists.
    assert (host["ansible_host"], host["ansible_port"]) == ("127.0.0.1", 40122)
    assert host["runpod_id"] == "a1b2c3"
    assert host["runpod_name"] == "comfy-a"
    assert host["runpod_gpu"] == "RTX 4090"
    assert host["runpod_gpu_count"] == 1
    assert host["runpod_status"] == "RUNNING"
    assert host["runpod_image"] == "aiclipse/comfyui:latest"
    assert host["runpod_env"] == {"TEMPLATE_TYPE": "sdxl", "COMFY_ARGS": "--lowvram --preview-method auto"}
    assert doc["_meta"]["hostvars"]["comfy-b"]["ansible_port"] == 40123


def test_one_request_lists_every_pod_the_list_is_not_paged(tmp_path):
    # RunPod's myself.pods takes no paging arguments: a big account comes back in one answer,
    # and every pod of it must be in the inventory.
    pods = [runpod_pod(f"id{n:04d}", f"pod-{n:04d}", ssh_port=20000 + n) for n in range(300)]
    with RunPodApi(KEY, pods) as server:
        doc, _proc = inventory_list(write_inventory_config(tmp_path, server.url))
        assert len(server.requests) == 1
    assert len(group_hosts(doc, "pods")) == 300
    assert doc["_meta"]["hostvars"]["pod-0299"]["ansible_port"] == 20299


# -- filters -------------------------------------------------------------------------------

FILTER_CASES = [
    ({"name_prefixes": ["comfy-"]}, ["comfy-a", "comfy-b"]),
    ({"gpu_types": ["rtx a6*"]}, ["comfy-b"]),
    ({"images": ["aiclipse/comfyui:*"]}, ["comfy-a", "comfy-b"]),
    ({"images": ["runpod/*"], "gpu_types": ["RTX 4090"]}, ["jupyter-notebook"]),
    ({"name_prefixes": ["comfy-"], "gpu_types": ["RTX 4090"]}, ["comfy-a"]),
    ({"name_prefixes": ["nothing-"]}, []),
]


def test_filters_by_name_prefix_gpu_type_and_image(api, tmp_path):
    # One ansible-inventory run over one config per case, each putting its pods in its own group.
    configs = [
        write_inventory_config(tmp_path / f"case{n}", api.url, group=f"case{n}", **options)
        for n, (options, _expected) in enumerate(FILTER_CASES)
    ]
    args = [arg for config in configs[1:] for arg in ("-i", str(config))]
    doc, _proc = inventory_list(configs[0], *args)
    for n, (options, expected) in enumerate(FILTER_CASES):
        assert group_hosts(doc, f"case{n}") == expected, options


def test_status_filter_keeps_running_pods_by_default(tmp_path):
    pods = [runpod_pod("r1", "running", ssh_port=40200), runpod_pod("s1", "stopped", status="EXITED")]
    with RunPodApi(KEY, pods) as server:
        doc, proc = inventory_list(write_inventory_config(tmp_path, server.url))
        assert group_hosts(doc, "pods") == ["running"]
        assert "stopped" not in proc.stderr  # filtered out, not a problem to warn about
        # Asked for, a stopped pod is still no SSH host: left out, with a warning naming it.
        doc, proc = inventory_list(write_inventory_config(tmp_path, server.url, statuses=["RUNNING", "EXITED"]))
    assert group_hosts(doc, "pods") == ["running"]
    assert "pod stopped (s1) is left out of the inventory: it has no runtime yet (status EXITED)" in _oneline(
        proc.stderr
    )


def test_pods_without_a_public_ssh_port_are_left_out_with_a_warning_naming_them(tmp_path):
    pods = [
        runpod_pod("ok1", "reachable", ssh_port=40300),
        runpod_pod("np1", "no-ssh-port", ssh_port=None),
        runpod_pod("pr1", "private-ip-only", ssh_port=40301, public=False),
        dict(runpod_pod("st1", "still-starting", ssh_port=40302), runtime=None),
    ]
    with RunPodApi(KEY, pods) as server:
        doc, proc = inventory_list(write_inventory_config(tmp_path, server.url))
    assert group_hosts(doc, "pods") == ["reachable"]
    warnings = _oneline(proc.stderr)
    assert "pod no-ssh-port (np1) is left out of the inventory: it exposes no 22/tcp port" in warnings
    assert "pod private-ip-only (pr1) is left out of the inventory: its port 22 has no public IP" in warnings
    assert "pod still-starting (st1) is left out of the inventory: it has no runtime yet" in warnings


def test_pods_sharing_a_name_are_all_kept_under_name_and_id(tmp_path):
    pods = [
        runpod_pod("x1", "twin", ssh_port=40400),
        runpod_pod("x2", "twin", ssh_port=40401),
        runpod_pod("x3", "single", ssh_port=40402),
    ]
    with RunPodApi(KEY, pods) as server:
        doc, proc = inventory_list(write_inventory_config(tmp_path, server.url))
        assert group_hosts(doc, "pods") == ["single", "twin-x1", "twin-x2"]
        assert "several pods are named 'twin'" in _oneline(proc.stderr)
        doc, _proc = inventory_list(write_inventory_config(tmp_path, server.url, hostnames="id"))
    assert group_hosts(doc, "pods") == ["x1", "x2", "x3"]


# -- secrets -------------------------------------------------------------------------------


def test_key_travels_only_in_the_authorization_header(api, tmp_path):
    inventory_list(write_inventory_config(tmp_path, api.url))
    assert api.requests, "no request reached the API"
    for request in api.requests:
        assert request["method"] == "POST"
        assert KEY not in request["path"] and KEY not in request["query_string"]
        assert request["authorization"] == f"Bearer {KEY}"


def test_no_secret_in_host_vars_output_or_cache_files_at_any_verbosity(api, tmp_path):
    cache_dir = tmp_path / "cache"
    config = write_inventory_config(
        tmp_path / "inv",
        api.url,
        cache=True,
        cache_plugin="ansible.builtin.jsonfile",
        cache_connection=str(cache_dir),
        cache_timeout=600,
        # Even names a user allows explicitly never carry a secret-looking value, and a token
        # inside a URL is masked.
        env_names=["TEMPLATE_TYPE", "COMFY_ARGS", "HF_TOKEN", "CONFIG_REPO", "EQUALS"],
    )
    doc, proc = inventory_list(config, "-vvvv")
    host = doc["_meta"]["hostvars"]["comfy-a"]
    assert host["runpod_env"] == {
        "TEMPLATE_TYPE": "sdxl",
        "COMFY_ARGS": "--lowvram --preview-method auto",
        "CONFIG_REPO": "https://********@github.com/me/pods.git",
        "EQUALS": "a=b=c",
    }
    assert host["runpod_env_withheld"] == ["HF_TOKEN", "JUPYTER_PASSWORD", "R2_SECRET_ACCESS_KEY"]
    cached = [path for path in cache_dir.rglob("*") if path.is_file()]
    assert cached, "the jsonfile cache wrote nothing"
    texts = {
        "stdout": proc.stdout,
        "stderr": proc.stderr,
        **{str(path): path.read_text(errors="replace") for path in cached},
    }
    for where, text in texts.items():
        for secret in (KEY, HF_SECRET, R2_SECRET, URL_TOKEN, "jupyter-pass-1"):
            assert secret not in text, f"{secret[:6]}... appears in {where}"
    # The cache answers the next run: no second request, the same hosts.
    requests = len(api.requests)
    again, _proc = inventory_list(config)
    assert len(api.requests) == requests
    assert again["_meta"]["hostvars"] == doc["_meta"]["hostvars"]
    # --flush-cache asks the API again.
    inventory_list(config, "--flush-cache")
    assert len(api.requests) == requests + 1


def test_a_value_from_the_api_is_never_rendered_as_a_template(tmp_path):
    marker = tmp_path / "rendered"
    payload = f"{{{{ lookup('ansible.builtin.pipe', 'touch {marker}') }}}}"
    pods = [runpod_pod("t1", "templated", ssh_port=40500, env={"COMFY_ARGS": payload, "TEMPLATE_TYPE": payload})]
    with RunPodApi(KEY, pods) as server:
        config = write_inventory_config(
            tmp_path / "inv",
            server.url,
            keyed_groups=[{"key": "runpod_env.TEMPLATE_TYPE", "prefix": "t"}],
            compose={"fleet_args": "runpod_env.COMFY_ARGS"},
        )
        doc, _proc = inventory_list(config)
    host = doc["_meta"]["hostvars"]["templated"]
    assert host["runpod_env"]["COMFY_ARGS"] == payload
    assert host["fleet_args"] == payload
    assert not marker.exists(), "a pod's setting was run as a template on the controller"


# -- failures ------------------------------------------------------------------------------


def test_wrong_key_fails_the_run_with_a_clear_error_and_never_prints_the_key(api, tmp_path):
    wrong = "rpa_WRONG_KEY_should_never_be_printed_9876"
    proc = ansible_inventory(write_inventory_config(tmp_path, api.url), "--list", "-vvvv", api_key=wrong)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "RunPod refused the API key (HTTP 401)" in _oneline(output)
    assert "RUNPOD_API_KEY" in output
    assert wrong not in output
    assert KEY not in output


def test_missing_key_fails_before_any_request(api, tmp_path):
    proc = ansible_inventory(write_inventory_config(tmp_path, api.url), "--list", api_key=None)
    assert proc.returncode != 0
    assert "No RunPod API key: export RUNPOD_API_KEY" in _oneline(proc.stderr)
    assert api.requests == []


@pytest.mark.parametrize(
    "fault, message",
    [
        ("graphql_error", "reported an error: Something went wrong. Please try again later."),
        ("http_500", "answered HTTP 502: <html><body><h1>502 Bad Gateway</h1></body></html>"),
        ("rate_limited", "is rate limiting this key (HTTP 429)"),
        ("not_json", "answered with something that is not JSON"),
    ],
)
def test_api_errors_fail_the_run_with_the_apis_reason(api, tmp_path, fault, message):
    api.fault = fault
    proc = ansible_inventory(write_inventory_config(tmp_path, api.url), "--list", "-vvvv", api_key=KEY)
    assert proc.returncode != 0
    assert message in _oneline(proc.stderr)
    assert KEY not in proc.stdout + proc.stderr
    # Not an empty inventory with a green exit: no host list on stdout.
    assert '"pods"' not in proc.stdout


def test_unreachable_api_fails_the_run(tmp_path):
    from harness.net import free_port

    url = f"http://127.0.0.1:{free_port()}/graphql"
    proc = ansible_inventory(write_inventory_config(tmp_path, url), "--list", api_key=KEY)
    assert proc.returncode != 0
    assert f"Cannot reach the RunPod API at {url}" in _oneline(proc.stderr)


def test_a_redirect_is_not_followed_so_the_key_goes_nowhere_else(tmp_path):
    with RunPodApi(KEY, fleet_pods()) as elsewhere, RunPodApi(KEY, fleet_pods()) as api:
        api.fault = ("redirect", elsewhere.url)
        proc = ansible_inventory(write_inventory_config(tmp_path, api.url), "--list", api_key=KEY)
        assert proc.returncode != 0
        assert "Redirects are not followed" in _oneline(proc.stderr)
        assert elsewhere.requests == []


@pytest.mark.parametrize("url", ["http://api.runpod.io/graphql", "http://192.0.2.10:8080/graphql", "ftp://x/graphql"])
def test_the_key_is_never_sent_in_clear_text_over_a_network(tmp_path, url):
    proc = ansible_inventory(write_inventory_config(tmp_path, url), "--list", api_key=KEY)
    assert proc.returncode != 0
    assert "is not an https URL: the RunPod API key would cross the network in clear text" in _oneline(proc.stderr)


def test_stand_in_answers_only_the_fields_asked_and_refuses_unknown_ones():
    # The stand-in must be as strict as a GraphQL server, or a plugin that forgets a field passes.
    import urllib.request

    with RunPodApi(KEY, fleet_pods()) as api:

        def ask(query):
            request = urllib.request.Request(
                api.url,
                data=json.dumps({"query": query}).encode(),
                headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        status, doc = ask("query { myself { pods { id runtime { ports { publicPort } } } } }")
        assert status == 200
        assert doc["data"]["myself"]["pods"][0] == {
            "id": "a1b2c3",
            "runtime": {"ports": [{"publicPort": 40122}, {"publicPort": 8188}]},
        }
        status, doc = ask("{ myself { pods { id sshPort } } }")
        assert status == 400 and doc["errors"][0]["message"] == 'Cannot query field "sshPort" on type "Pod".'


def _oneline(text):
    return " ".join(text.split())
