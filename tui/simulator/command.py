"""`hailuo-tui simulate`: run the loopback API simulator until interrupted."""

from __future__ import annotations

import click


def _error_rate(values: tuple[str, ...]) -> dict[int, float]:
    rates: dict[int, float] = {}
    for value in values:
        status, _, rate = value.partition("=")
        try:
            rates[int(status)] = float(rate)
        except ValueError:
            raise click.BadParameter(f"{value!r} must look like 500=0.05") from None
    return rates


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep it loopback).")
@click.option("--port", default=8787, show_default=True, type=int, help="Port; 0 picks a free one.")
@click.option("--job-seconds", default=20.0, show_default=True, type=float, help="Time from created to completed.")
@click.option("--seed", default=None, type=int, help="Seed for every random fault, so runs repeat.")
@click.option("--require-key", default=None, help="Refuse every other key with the real 401 body.")
@click.option("--latency", default=0.0, type=float, help="Seconds added to every API request.")
@click.option("--error-rate", multiple=True, metavar="STATUS=RATE",
              help="e.g. 429=0.1 or 500=0.05 (429 and 5xx; applies to result queries). Repeatable.")
@click.option("--fail-rate", default=0.0, type=float, help="Share of new jobs that end failed.")
@click.option("--policy-word", default="forbidden", show_default=True, help="A prompt with it is refused (400).")
@click.option("--retention-seconds", default=7 * 86400.0, type=float, help="Older ids answer 404.")
@click.option("--realistic-durations", is_flag=True,
              help="Each new job lasts 30-120 s by model (drawn, seeded) instead of --job-seconds.")
@click.option("--time-scale", default=1.0, show_default=True, type=click.FloatRange(min=0.001),
              help="Multiplies the drawn durations (0.1: ten times faster).")
def simulate(host, port, job_seconds, seed, require_key, latency, error_rate, fail_rate, policy_word,
             retention_seconds, realistic_durations, time_scale) -> None:
    """Serve a loopback stand-in of the gptproto Hailuo API."""
    import threading

    from tui.simulator import Faults, Simulator
    from tui.simulator.server import REALISTIC_SPREAD

    faults = Faults(latency=latency, fail_rate=fail_rate, policy_word=policy_word)
    for status, rate in _error_rate(error_rate).items():
        if status == 429:
            faults.rate_limit_rate = rate
        else:
            faults.get_error_rate, faults.get_error_status = rate, status
    sim = Simulator(host=host, port=port, job_seconds=job_seconds, seed=seed, require_key=require_key,
                    retention_seconds=retention_seconds, faults=faults,
                    duration_spread=REALISTIC_SPREAD if realistic_durations else None, time_scale=time_scale)
    try:
        sim.start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    click.echo(f"Simulator listening on {sim.base_url}")
    click.echo(f"export GPTPROTO_BASE_URL={sim.base_url}")
    click.echo(f"export GPTPROTO_API_KEY={require_key or 'sk-sim-demo'}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        sim.stop()
