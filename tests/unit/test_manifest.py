"""Model manifests (module_utils.manifest and the model_manifest module).

The real manifests of the original templates (tests/fixtures/manifests, the project's own
copies) are the main test data; hand-written lines cover each rule.
"""

import os
import sys

import pytest
from hypothesis import given, settings, strategies as st

from harness.paths import FIXTURES as FIXTURES_DIR, REPO

# The checkout is the collection: make `ansible_collections.aiclipse.comfyui` importable.
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.manifest import (  # noqa: E402
    ManifestError,
    ManifestParser,
    ManifestSource,
    build_plan,
    canonical_source,
)
from harness.ansible_run import run_module  # noqa: E402

FIXTURES = FIXTURES_DIR / "manifests"
MODELS = "/vault/models"
SHA = "ab" * 32


def parser(**kwargs):
    return ManifestParser(MODELS, **kwargs)


def parse(text, name="m.txt", **kwargs):
    """Entries of a text that must parse cleanly."""
    entries, problems = parser(**kwargs).parse_text(text, name)
    assert problems == []
    return entries


def problems_of(text, name="m.txt", **kwargs):
    entries, problems = parser(**kwargs).parse_text(text, name)
    return problems


def plan(*sources, **kwargs):
    return build_plan(list(sources), parser(**kwargs))


# --- the real manifests ---------------------------------------------------------------------


def test_every_real_manifest_parses():
    files = sorted(FIXTURES.glob("*_models.txt"))
    assert len(files) == 3
    for path in files:
        entries, problems = parser(r2_bucket="models").parse_text(path.read_text(), str(path))
        assert problems == [], path
        assert entries, path
        for entry in entries:
            assert entry["dest"].startswith(MODELS + "/")
            assert entry["origin"].startswith(f"{path}:")


def test_boomboom_manifest_entries():
    entries = parse((FIXTURES / "boomboom_models.txt").read_text(), "boomboom_models.txt", r2_bucket="models")
    assert [e["source"] for e in entries] == ["huggingface"] * 6 + ["r2"] * 3
    # The commented-out fp8 line is not an entry; line numbers count comments and blanks.
    assert entries[0]["origin"] == "boomboom_models.txt:10"
    comfy = entries[1]
    assert comfy["filename"] == "split_files/diffusion_models/flux1-dev-kontext_fp8_scaled.safetensors"
    assert comfy["dest"] == f"{MODELS}/unet/flux1-dev-kontext_fp8_scaled.safetensors"
    assert comfy["url"] == (
        "https://huggingface.co/Comfy-Org/flux1-kontext-dev_ComfyUI/resolve/main/"
        "split_files/diffusion_models/flux1-dev-kontext_fp8_scaled.safetensors"
    )
    lora = entries[6]
    assert (lora["bucket"], lora["key"]) == ("models", "loras/v9_xelios_it.safetensors")
    assert lora["dest"] == f"{MODELS}/loras/v9_xelios_it.safetensors"
    assert "url" not in lora


def test_qwen_manifest_without_trailing_newline():
    entries = parse((FIXTURES / "qwen-multi-edit_models.txt").read_text(), "q.txt", r2_bucket="models")
    assert [e["source"] for e in entries] == ["url"] * 4 + ["r2"]
    assert entries[0]["url"] == entries[0]["identifier"]
    assert entries[4]["origin"] == "q.txt:5"
    assert entries[4]["key"] == "hk_v1_final.safetensors"


def test_sd15_manifest_is_the_three_field_huggingface_form():
    entries = parse((FIXTURES / "sd15-basic_models.txt").read_text())
    assert [(e["source"], e["repo"], e["subdir"]) for e in entries] == [
        ("huggingface", "runwayml/stable-diffusion-v1-5", "checkpoints"),
        ("huggingface", "stabilityai/sd-vae-ft-mse-original", "vae"),
        ("huggingface", "sd-concepts-library/EasyNegative", "embeddings"),
    ]
    assert entries[2]["dest"] == f"{MODELS}/embeddings/learned_embeds.bin"


# --- line rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written,source",
    [
        ("hf", "huggingface"),
        ("HuggingFace", "huggingface"),
        ("direct", "url"),
        ("cloudflare", "r2"),
        ("civitai", "civitai"),
        ("R2", "r2"),
        ("hugginface", None),
    ],
)
def test_source_aliases(written, source):
    assert canonical_source(written) == source


def test_spaces_comments_blank_lines_crlf_and_bom():
    text = "\ufeff# header\r\n\r\n   \t\r\n  hf | org/repo |  a.safetensors | vae  \r\n   # indented comment\r\n"
    (entry,) = parse(text)
    assert (entry["source"], entry["identifier"], entry["filename"], entry["subdir"]) == (
        "huggingface",
        "org/repo",
        "a.safetensors",
        "vae",
    )
    assert entry["origin"] == "m.txt:4"
    assert entry["sha256"] is None


def test_revision_and_endpoint_and_quoting():
    (entry,) = parse(
        "huggingface|org/repo@refs/pr/5|dir/my model.safetensors|loras/sdxl/", hf_endpoint="http://127.0.0.1:9/hf/"
    )
    assert entry["repo"] == "org/repo" and entry["revision"] == "refs/pr/5"
    assert entry["url"] == "http://127.0.0.1:9/hf/org/repo/resolve/refs%2Fpr%2F5/dir/my%20model.safetensors"
    assert entry["subdir"] == "loras/sdxl"
    assert entry["dest"] == f"{MODELS}/loras/sdxl/my model.safetensors"
    assert entry["name"] == "loras/sdxl/my model.safetensors"


def test_civitai_url_from_endpoint():
    (entry,) = parse(
        "civitai|128713|dreamshaper_8.safetensors|checkpoints|" + SHA.upper(), civitai_endpoint="http://127.0.0.1:9"
    )
    assert entry["url"] == "http://127.0.0.1:9/api/download/models/128713"
    assert entry["sha256"] == SHA


def test_four_fields_read_as_huggingface_with_sha256():
    (entry,) = parse(f"org/repo|a.bin|vae|{SHA}")
    assert (entry["source"], entry["identifier"], entry["sha256"]) == ("huggingface", "org/repo", SHA)


def test_empty_sha256_field_means_none():
    (entry,) = parse("url|https://example.invalid/a.bin|a.bin|vae|")
    assert entry["sha256"] is None


def test_r2_bucket_rules():
    (with_default,) = parse("r2|loras/a.safetensors|a.safetensors|loras", r2_bucket="mine")
    assert (with_default["bucket"], with_default["key"]) == ("mine", "loras/a.safetensors")
    (split,) = parse("cloudflare|private/loras/a.safetensors|a.safetensors|loras")
    assert (split["bucket"], split["key"]) == ("private", "loras/a.safetensors")


@pytest.mark.parametrize(
    "line,expected",
    [
        ("hugginface|org/repo|a.bin|vae", "unknown source 'hugginface'"),
        ("ftp|x|a.bin|vae|" + SHA, "unknown source 'ftp'"),
        ("org/repo|a.bin", "found 2 fields"),
        ("a|b|c|d|e|f", "found 6 fields"),
        ("hf|org/repo||vae", "missing filename"),
        ("hf||a.bin|vae", "missing identifier"),
        ("hf|org/repo|a.bin|", "missing subdir"),
        ("hf|org/repo|a.bin|vae|abc123", "sha256 'abc123' is not 64 hexadecimal"),
        ("org/repo|a.bin|vae|" + "g" * 64, "is not 64 hexadecimal"),
        ("hf|org/repo|a.bin|../etc", "subdir '../etc' contains '..'"),
        ("hf|org/repo|a.bin|vae/../../x", "contains '..'"),
        ("hf|org/repo|a.bin|/etc", "subdir '/etc' is absolute"),
        ("hf|org/repo|/etc/passwd|vae", "filename '/etc/passwd' is absolute"),
        ("hf|org/repo|../../.bashrc|vae", "filename '../../.bashrc' contains '..'"),
        ("hf|org/repo|dir/|vae", None),  # trailing slash: base name is still 'dir' -> accepted
        ("hf|org/repo|a.bin|./", "subdir './' names no folder"),
        ("hf|not a repo|a.bin|vae", "is not a Hugging Face repo id"),
        ("hf|org/../repo|a.bin|vae", "is not a Hugging Face repo id"),
        ("hf|org/repo@|a.bin|vae", "revision after '@'"),
        ("civitai|dreamshaper|a.bin|checkpoints", "must be a model version id"),
        ("url|ftp://host/a.bin|a.bin|vae", "is not an http:// or https:// URL"),
        ("url|a.bin|a.bin|vae", "is not an http:// or https:// URL"),
        ("r2|/abs/key|a.bin|loras", "starts with '/'"),
    ],
)
def test_bad_lines_name_file_line_and_problem(line, expected):
    text = f"# comment\n\n{line}\n"
    problems = problems_of(text, "user.txt")
    if expected is None:
        assert problems == []
        return
    assert len(problems) == 1, problems
    origin, message = problems[0]
    assert origin == "user.txt:3"
    assert expected in message


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"])
def test_only_newline_ends_a_line(separator):
    """str.splitlines() also splits on these; a comment holding one must not shift line numbers."""
    text = f"# a comment with a{separator}inside\nhf|org/repo|a.bin|vae\nhf|org/repo|b.bin|../x\n"
    entries, problems = parser().parse_text(text, "m.txt")
    assert [e["origin"] for e in entries] == ["m.txt:2"]
    assert [origin for origin, _message in problems] == ["m.txt:3"]


@pytest.mark.parametrize(
    "url,expected",
    [
        ("http://example.invalid:99999/a.bin", "port 99999 is out of range"),
        ("http://example.invalid:abc/a.bin", "port 'abc' is not a number"),
        ("http://example.invalid:/a.bin", None),
        ("https:///a.bin", "has no host"),
        ("http://exa mple.invalid/a.bin", "space"),
        ("http://example.invalid/a\x7f.bin", "control character"),
        ("http://[::1/a.bin", "is not a valid URL"),
        ("http://user:pass@example.invalid/a.bin", None),
    ],
)
def test_url_syntax_is_checked_with_file_and_line(url, expected):
    problems = problems_of(f"# c\nurl|{url}|a.bin|vae\n", "user.txt")
    if expected is None:
        assert problems == []
        return
    assert len(problems) == 1 and problems[0][0] == "user.txt:2", problems
    assert expected in problems[0][1], problems


@pytest.mark.parametrize("option", ["hf_endpoint", "civitai_endpoint"])
def test_bad_endpoints_are_refused(option):
    with pytest.raises(ValueError, match="port 99999 is out of range"):
        parser(**{option: "http://127.0.0.1:99999"})


def test_every_problem_is_reported_at_once_with_its_line(tmp_path):
    path = tmp_path / "user.txt"
    path.write_text("hf|org/repo|a.bin|vae\nbogus|x|y|z\nhf|org/repo|b.bin|/abs\nhf|org/repo|c.bin|vae|nothex\n")
    with pytest.raises(ManifestError) as caught:
        plan(ManifestSource(path=str(path), name="user.txt"))
    assert [origin for origin, _problem in caught.value.problems] == ["user.txt:2", "user.txt:3", "user.txt:4"]
    assert str(caught.value).startswith("3 problems in the model manifests (nothing was downloaded):")


# --- YAML lists -----------------------------------------------------------------------------


def test_yaml_items_mappings_and_strings():
    items = [
        {"repo": "org/repo", "filename": "sub/a.safetensors", "subdir": "vae"},
        {"source": "civitai", "id": 42, "filename": "b.safetensors", "subdir": "loras", "sha256": SHA},
        "direct|https://example.invalid/c.bin|c.bin|upscale_models",
    ]
    entries, problems = parser().parse_items(items, "models_entries")
    assert problems == []
    assert [(e["source"], e["identifier"], e["name"]) for e in entries] == [
        ("huggingface", "org/repo", "vae/a.safetensors"),
        ("civitai", "42", "loras/b.safetensors"),
        ("url", "https://example.invalid/c.bin", "upscale_models/c.bin"),
    ]
    assert entries[1]["origin"] == "models_entries item 2"


@pytest.mark.parametrize(
    "item,expected",
    [
        ({"repo": "org/repo", "filename": "a.bin", "subdr": "vae"}, "unknown key 'subdr'"),
        ({"repo": "org/repo", "url": "https://x.invalid/a", "filename": "a", "subdir": "v"}, "given twice"),
        ({"source": "hf", "repo": "org/repo", "filename": "a.bin"}, "missing subdir"),
        (["not", "a", "mapping"], "expected a mapping or a pipe-format string"),
        ("hf|org/repo|a.bin|..", "contains '..'"),
    ],
)
def test_yaml_item_errors(item, expected):
    entries, problems = parser().parse_items([item], "models_entries")
    assert entries == []
    assert problems[0][0] == "models_entries item 1"
    assert expected in problems[0][1]


def test_yaml_entries_must_be_a_list():
    _entries, problems = parser().parse_items({"repo": "x"}, "models_entries")
    assert problems == [("models_entries", "expected a list of entries, got dict")]


# --- merge ----------------------------------------------------------------------------------


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_template_replaces_user_entry_with_same_file_and_user_only_entries_stay(tmp_path):
    user = write(tmp_path, "user.txt", "hf|me/old-ae|ae.safetensors|vae\nhf|me/mine|mine.safetensors|loras\n")
    base = write(tmp_path, "base.txt", "hf|base/upscaler|4x.pth|upscale_models\n")
    template = write(tmp_path, "tpl.txt", "# t\nhf|bfl/flux|ae.safetensors|vae\n")
    result = plan(ManifestSource(path=user), ManifestSource(path=base), ManifestSource(path=template))
    by_name = {e["name"]: e for e in result["entries"]}
    assert set(by_name) == {"vae/ae.safetensors", "loras/mine.safetensors", "upscale_models/4x.pth"}
    assert by_name["vae/ae.safetensors"]["identifier"] == "bfl/flux"
    assert by_name["vae/ae.safetensors"]["origin"] == f"{template}:2"
    assert result["replaced"] == [{"name": "vae/ae.safetensors", "origin": f"{user}:1", "replaced_by": f"{template}:2"}]
    assert [m["entries"] for m in result["manifests"]] == [2, 1, 1]


def test_same_file_name_in_another_folder_is_a_different_model(tmp_path):
    user = write(tmp_path, "user.txt", "hf|me/x|diffusion_pytorch_model.safetensors|vae\n")
    template = write(tmp_path, "tpl.txt", "hf|t/y|diffusion_pytorch_model.safetensors|unet\n")
    result = plan(ManifestSource(path=user), ManifestSource(path=template))
    assert sorted(e["name"] for e in result["entries"]) == [
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
    ]
    assert result["replaced"] == []


def test_duplicate_destination_in_one_manifest_names_both_lines(tmp_path):
    path = write(tmp_path, "tpl.txt", "hf|a/b|x/model.bin|vae\n\nurl|https://h.invalid/m|model.bin|vae/\n")
    with pytest.raises(ManifestError) as caught:
        plan(ManifestSource(path=path))
    assert caught.value.problems == [(f"{path}:3", f"destination vae/model.bin is already written by {path}:1")]


def test_missing_optional_manifest_is_empty_and_required_one_fails(tmp_path):
    missing = str(tmp_path / "nope.txt")
    result = plan(ManifestSource(path=missing), ManifestSource(entries=["hf|a/b|c.bin|vae"], name="vars"))
    assert result["manifests"][0] == {"name": missing, "path": missing, "status": "missing", "entries": 0}
    assert len(result["entries"]) == 1
    with pytest.raises(ManifestError) as caught:
        plan(ManifestSource(path=missing, required=True))
    assert caught.value.problems[0][0] == missing
    assert "does not exist" in caught.value.problems[0][1]


def test_manifest_that_is_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"hf|a/b|c.bin|vae\nhf|a/b|\xff.bin|vae\n")
    with pytest.raises(ManifestError) as caught:
        plan(ManifestSource(path=str(path)))
    assert "line 2 is not valid UTF-8" in caught.value.problems[0][1]


def test_r2_key_without_any_bucket_is_skipped_not_fatal(tmp_path):
    path = write(tmp_path, "q.txt", (FIXTURES / "qwen-multi-edit_models.txt").read_text())
    result = plan(ManifestSource(path=path))
    assert [e["source"] for e in result["entries"]] == ["url"] * 4
    (skipped,) = result["skipped"]
    assert skipped["origin"] == f"{path}:5"
    assert "R2_BUCKET is not set" in skipped["reason"]


# --- property: nothing ever lands outside models/ ---------------------------------------------

_PATHISH = st.text(alphabet=st.sampled_from(list("ab./~\\ -_")), min_size=0, max_size=12)


@settings(max_examples=400, deadline=None)
@given(filename=_PATHISH, subdir=_PATHISH)
def test_dest_is_always_inside_the_models_folder(filename, subdir):
    entries, problems = parser().parse_text(f"hf|org/repo|{filename}|{subdir}", "p.txt")
    if problems:
        assert entries == []
        return
    (entry,) = entries
    real = os.path.normpath(entry["dest"])
    assert real == entry["dest"]
    assert real.startswith(MODELS + "/") and os.path.dirname(real) != MODELS


# --- the module, through ansible ------------------------------------------------------------


def test_module_returns_the_merged_plan_in_normal_and_check_mode(tmp_path):
    user = write(tmp_path, "user.txt", "hf|me/mine|mine.safetensors|loras\nhf|me/old|ae.safetensors|vae\n")
    args = {
        "models_dir": str(tmp_path / "models"),
        "hf_endpoint": "http://127.0.0.1:9/hf",
        "r2_bucket": "models",
        "manifests": [
            {"path": user},
            {"path": str(tmp_path / "absent.txt")},
            {"path": str(FIXTURES / "boomboom_models.txt"), "required": True},
        ],
    }
    for check in (False, True):
        result, _proc = run_module("model_manifest", args, check=check)
        assert result.get("failed") is not True, result
        assert result["changed"] is False
        assert result["counts"] == {"huggingface": 7, "civitai": 0, "url": 0, "r2": 3}
        names = [e["name"] for e in result["entries"]]
        assert "loras/mine.safetensors" in names and names.count("vae/ae.safetensors") == 1
        assert result["replaced"][0]["origin"] == f"{user}:2"
        assert [m["status"] for m in result["manifests"]] == ["read", "missing", "read"]
    assert not (tmp_path / "models").exists(), "the module must only read"


def test_module_fails_listing_every_problem_with_file_and_line(tmp_path):
    user = write(tmp_path, "user.txt", "hf|a/b|ok.bin|vae\nhf|a/b|x.bin|../../etc\nciv|1|y.bin|loras\n")
    result, proc = run_module(
        "model_manifest",
        {
            "models_dir": str(tmp_path / "models"),
            "manifests": [{"path": user}, {"name": "models_entries", "entries": [{"repo": "a/b"}]}],
        },
    )
    assert result["failed"] is True
    assert [p["origin"] for p in result["problems"]] == [f"{user}:2", f"{user}:3", "models_entries item 1"]
    assert f"{user}:2: subdir '../../etc' contains '..'" in result["msg"]
    assert "unknown source 'civ'" in result["msg"]


def test_module_fails_on_a_required_manifest_that_is_missing(tmp_path):
    result, _proc = run_module(
        "model_manifest",
        {
            "models_dir": str(tmp_path / "models"),
            "manifests": [{"path": str(tmp_path / "flux_models.txt"), "required": True}],
        },
    )
    assert result["failed"] is True
    assert f"{tmp_path / 'flux_models.txt'}: manifest file does not exist" in result["msg"]


def test_module_writes_the_plan_file_0640_with_urls_masked(tmp_path):
    user = write(tmp_path, "user.txt", "url|https://bob:hunter2@host.invalid/x.bin|x.bin|vae\n")
    plan_file = tmp_path / "logs/models-plan.txt"
    for _run in range(2):  # created, then left alone; either way 0640
        result, _proc = run_module(
            "model_manifest",
            {"models_dir": str(tmp_path / "models"), "manifests": [{"path": user}], "plan_file": str(plan_file)},
        )
        assert result.get("failed") is not True, result
        assert oct(plan_file.stat().st_mode & 0o777) == "0o640"
    assert "hunter2" not in plan_file.read_text()
    plan_file.chmod(0o666)
    write(tmp_path, "user.txt", "url|https://host.invalid/y.bin|y.bin|vae\n")
    run_module(
        "model_manifest",
        {"models_dir": str(tmp_path / "models"), "manifests": [{"path": user}], "plan_file": str(plan_file)},
    )
    assert oct(plan_file.stat().st_mode & 0o777) == "0o640"


def test_module_warns_when_the_plan_cannot_be_written_and_still_returns_the_plan(tmp_path, small_tmpfs):
    folder = small_tmpfs("64k")
    (folder / "filler").write_bytes(b"")
    with open(folder / "filler", "wb") as handle:
        try:
            handle.write(b"x" * 1024 * 1024)
        except OSError:
            pass
    user = write(tmp_path, "user.txt", "".join(f"hf|org/repo|m{n:03d}.bin|vae\n" for n in range(300)))
    result, proc = run_module(
        "model_manifest",
        {
            "models_dir": str(tmp_path / "models"),
            "manifests": [{"path": user}],
            "plan_file": str(folder / "models-plan.txt"),
        },
    )
    assert result.get("failed") is not True, result
    assert len(result["entries"]) == 300
    assert any("No space left on device" in w for w in result.get("warnings", [])), result.get("warnings")
    assert "Traceback" not in proc.stdout + proc.stderr
