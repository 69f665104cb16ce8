"""A step compiled from a model carries where the model writes it, so an error only its run can
find names the model's FILE:LINE:COL and field, as lint's errors do: an argument the atom
cannot use (an image that is not there), an atom this engine lacks, a value of the wrong type."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from changeline.devices.inventory import Host
from changeline.devices.session import DeviceSession, Endpoint
from changeline.engine import runner
from changeline.engine.atom import AtomContext
from changeline.errors import InputError
from changeline.models.compile import compile_for_host, load_model
from changeline.state.backups import BackupStore
from changeline.state.journal import Journal

MODEL = Path(__file__).resolve().parents[2] / "models" / "library" / "amf" / "1.3" / "amf-upgrade.yaml"
TRANSFER = "spec.stages[1].steps[0]"  # transfer-image, as the model writes it


def line_of(text: str, after: str = "- name: transfer-image") -> tuple[int, int]:
    """Line and column of the first `text` after the line holding `after`, read from the file itself."""
    lines = MODEL.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if after in line)
    number = next(i for i in range(start, len(lines)) if text in lines[i])
    return number + 1, lines[number].index(text) + 1


@pytest.fixture
def transfer(tmp_path):
    host = Host(name="amf-1", hostname="127.0.0.1", port=1, ssh_port=1, known_hosts=str(tmp_path / "none"),
                data={"ne_type": "AMF", "software_version": "1.2.0"})
    plan = compile_for_host(load_model(str(MODEL)), host, {"image_repo": str(tmp_path / "no-images")})
    step = plan.step("transfer-image")
    # Nothing below reaches the NE: every error is found before the session would connect.
    ctx = AtomContext(host=host, session=DeviceSession(Endpoint.from_host(host)),
                      journal=Journal(tmp_path / "journal.sqlite"), backups=BackupStore(tmp_path / "backups"),
                      run_id="c-1", step=step.name, source=step.source)
    yield step, ctx
    ctx.session.close()


def test_a_compiled_step_knows_its_model_file_and_lines(transfer):
    step, _ = transfer
    assert step.source.file == str(MODEL)
    line, col = line_of("image:")
    assert str(step.source.problem(("with", "image"), "x")) == f"{MODEL}:{line}:{col}: {TRANSFER}.with.image: x"
    assert "source" not in step.to_dict()  # the plan as shown and recorded is unchanged


def test_an_argument_only_the_run_finds_wrong_names_the_model_line_and_field(transfer, tmp_path):
    step, ctx = transfer
    line, col = line_of("image:")
    with pytest.raises(InputError) as caught:
        runner.execute(step.atom, ctx, step.args)
    assert str(caught.value) == (f"{MODEL}:{line}:{col}: {TRANSFER}.with.image: "
                                 f"{tmp_path / 'no-images' / 'AMF-1.3.0.img'} does not exist")


def test_an_unknown_atom_and_a_wrongly_typed_argument_name_the_model_line_and_field(transfer):
    step, ctx = transfer
    line, col = line_of("atom:")
    with pytest.raises(InputError, match="^" + re.escape(f"{MODEL}:{line}:{col}: {TRANSFER}.atom: unknown atom 'no_such_atom'")):
        runner.execute("no_such_atom", ctx, step.args)
    line, col = line_of("image:")
    wrong = dataclasses.replace(step, args={"image": 7})
    with pytest.raises(InputError, match="^" + re.escape(f"{MODEL}:{line}:{col}: {TRANSFER}.with.image: ")):
        runner.check_args(wrong.atom, wrong.args, wrong.source)


def test_a_step_from_no_model_is_still_named_by_atom_and_field():
    with pytest.raises(InputError, match=r"^<args>: transfer_software\.image: "):
        runner.check_args("transfer_software", {"image": 7})


@pytest.mark.prefect
@pytest.mark.slow
def test_changeline_run_names_the_model_line_of_a_missing_image_and_exits_1(tmp_path_factory, monkeypatch):
    """The whole line: a real Prefect server and simulated NE; the image repository given on the
    command line is empty, so the transfer step fails on the NE's run and the NE is rolled back."""
    from tests.prefectfixture import start_prefect_server, stop
    from tests.simfixture import cli, free_port, running_sim

    empty = tmp_path_factory.mktemp("no-images")
    # A server of its own on a port of its own: the session's server (other packages') is left alone.
    monkeypatch.setenv("CHANGELINE_TEST_PREFECT_PORT", str(free_port()))
    proc, api, _home = start_prefect_server()
    try:
        with running_sim(tmp_path_factory.mktemp("sim"), [{"name": "amf-1", "type": "AMF", "version": "1.2.0"}]) as sim:
            ran = cli("run", str(MODEL), "-i", str(sim.inventory_path), "--campaign-id", "no-image",
                      "-p", f"image_repo={empty}",
                      env={"CHANGELINE_HOME": str(tmp_path_factory.mktemp("home")), "PREFECT_API_URL": api},
                      timeout=300)
    finally:
        stop(proc)
    out = ran.stdout + ran.stderr
    line, col = line_of("image:")
    assert ran.returncode == 1, out[-3000:]
    assert f"{MODEL}:{line}:{col}: {TRANSFER}.with.image: {empty / 'AMF-1.3.0.img'} does not exist" in out, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
