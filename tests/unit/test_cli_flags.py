"""Flags that read an environment variable: the command line wins, then the variable, then the default; a bad
value of either is refused naming the flag or the variable, echoed cut short."""

from __future__ import annotations

import argparse

import pytest

from service import cli
from service.cli_flags import Flag, add_flags, host, port, resolve, switch, url, workers


def parse(argv: list[str], env: dict[str, str]) -> argparse.Namespace:
    args = cli._parser().parse_args(argv)
    resolve(args, env)
    return args


def test_the_command_line_wins_then_the_variable_then_the_default() -> None:
    assert parse(["serve"], {}).port == 8080
    assert parse(["serve"], {"JUMPGATE_PORT": "9000"}).port == 9000
    assert parse(["serve", "--port", "9100"], {"JUMPGATE_PORT": "9000"}).port == 9100
    assert parse(["serve"], {"JUMPGATE_CONFIG": "/etc/j.yaml"}).config == "/etc/j.yaml"
    assert parse(["serve"], {"JUMPGATE_CONFIG": ""}).config is None  # empty counts as unset
    assert parse(["serve"], {"JUMPGATE_ALLOW_UNAUTHENTICATED": "true"}).allow_unauthenticated is True
    assert parse(["serve"], {}).allow_unauthenticated is False
    assert parse(["simulate"], {"JUMPGATE_SIMULATOR_LATENCY": "zero"}).latency == "zero"
    assert parse(["demo-config"], {}).runtime_url == cli.DEFAULT_SIMULATOR_URL


def test_variables_of_other_commands_and_of_boto3_are_not_read_by_jumpgate() -> None:
    assert parse(["check-config", "f.yaml"], {"JUMPGATE_PORT": "not a port"}).file == "f.yaml"
    assert parse(["discover"], {"AWS_REGION": "eu-west-1", "AWS_PROFILE": "p"}).region is None  # boto3 reads them


@pytest.mark.parametrize(("env", "expected"), [
    ({"JUMPGATE_PORT": "abc"}, "environment variable JUMPGATE_PORT: 'abc' is not a port number (1-65535)"),
    ({"JUMPGATE_PORT": "70000"}, "environment variable JUMPGATE_PORT: 70000 is not a port number"),
    ({"JUMPGATE_WORKERS": "0"}, "environment variable JUMPGATE_WORKERS: 0 worker processes: give 1-64"),
    ({"JUMPGATE_ALLOW_UNAUTHENTICATED": "maybe"}, "environment variable JUMPGATE_ALLOW_UNAUTHENTICATED: 'maybe'"),
    ({"JUMPGATE_HOST": "bad host!"}, "environment variable JUMPGATE_HOST: 'bad host!' is not an IP address"),
])
def test_a_bad_variable_is_refused_by_name(env: dict[str, str], expected: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse(["serve"], env)
    assert stopped.value.code == 2
    assert expected in capsys.readouterr().err


def test_a_bad_flag_is_refused_and_echoed_cut_short(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["serve", "--port", "9" * 5000], {})
    err = capsys.readouterr().err
    assert "argument --port: " in err and "is not a port number" in err and len(err) < 600


@pytest.mark.parametrize("value", ["0", "65536", "-1", "1e3", "", " 80", "8_0", "\u0668\u0660", "0x50"])
def test_ports_are_1_to_65535(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        port(value)


def test_converters_accept_what_they_should() -> None:
    assert port("1") == 1 and port("65535") == 65535
    assert workers("64") == 64
    assert host("0.0.0.0") == "0.0.0.0" and host("::1") == "::1" and host("localhost") == "localhost"
    assert host("gateway-1.internal") == "gateway-1.internal"
    assert url("http://127.0.0.1:8081/") == "http://127.0.0.1:8081"
    assert switch("1") is True and switch("off") is False
    for bad in ("-a", "a..b", "a_b", "x" * 300, ""):
        with pytest.raises(argparse.ArgumentTypeError):
            host(bad)
    for bad in ("ftp://x", "127.0.0.1:8081", "http://a b"):
        with pytest.raises(argparse.ArgumentTypeError):
            url(bad)


def test_every_flag_help_ends_with_its_default_and_variable() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, [Flag("--n", "how many", "N_ENV", 3, int)])
    (action,) = [a for a in parser._actions if a.dest == "n"]
    assert action.help == "how many (default: 3; env: N_ENV)"
