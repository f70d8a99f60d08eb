"""emoreason.configs: packaged configs found by name through importlib.resources, and `--config NAME`."""
from pathlib import Path

import pytest

import emoreason
from emoreason.cli import main
from emoreason.configs import config_path, find_config, list_configs
from emoreason.configs.__main__ import main as configs_main
from emoreason.errors import UserError

PACKAGE = Path(emoreason.__file__).parent


def test_list_configs_names_every_packaged_yaml():
    names = list_configs()
    assert {"mini", "tiny", "accelerate/ddp", "accelerate/fsdp", "paper/table2-sequence-alt1"} <= set(names)
    assert len([n for n in names if n.startswith("paper/")]) == 27 and names == sorted(names)
    assert all(not n.endswith(".yaml") for n in names)


@pytest.mark.parametrize("name", ["mini", "mini.yaml", "paper/table2-sequence-alt1", "paper/table2-sequence-alt1.yaml"])
def test_config_path_accepts_names_with_or_without_suffix(name):
    path = config_path(name)
    assert path.is_file() and path.suffix == ".yaml"
    assert path.parent.relative_to(PACKAGE / "configs") in (Path("."), Path("paper"))


@pytest.mark.parametrize("name", ["nope", "paper/nope", "../pyproject", "/etc/passwd", ""])
def test_config_path_refuses_unknown_or_escaping_names(name):
    with pytest.raises(UserError, match="config"):
        config_path(name)


def test_unknown_name_error_summarises_what_exists():
    with pytest.raises(UserError) as err:
        config_path("paper/table9")
    message = str(err.value)
    assert "mini, tiny" in message and "paper/* (27)" in message and "\n" not in message


def test_find_config_prefers_an_existing_file(tmp_path, monkeypatch):
    own = tmp_path / "tiny"  # a local file named like a packaged config wins
    own.write_text("name: mine\n")
    monkeypatch.chdir(tmp_path)
    assert find_config("tiny") == Path("tiny")
    assert find_config(own) == own
    assert find_config("mini") == config_path("mini")


def test_train_cli_unknown_config_is_one_line_error(tmp_path, capsys):
    assert main(["train", "--config", "paper/table9", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("emoreason: error: config 'paper/table9'") and "\n" not in err
    assert not (tmp_path / "r").exists()


def test_python_m_configs_lists_and_prints_paths(capsys):
    assert configs_main([]) == 0
    assert capsys.readouterr().out.split() == list_configs()
    assert configs_main(["accelerate/ddp", "tiny"]) == 0
    assert capsys.readouterr().out.split() == [str(config_path("accelerate/ddp")), str(config_path("tiny"))]
    assert configs_main(["nope"]) == 1
    assert "error: config 'nope'" in capsys.readouterr().err
