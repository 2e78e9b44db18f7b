"""``python -m bench [sandbox|web] [options]``: run a benchmark, print it, save it.

    python -m bench                       # = sandbox: floor vs docker cold/warm vs bwrap
    python -m bench sandbox --reps 5 --e2e
    python -m bench sandbox --gpu         # on a GPU host (image katakana-sandbox:gpu)
    python -m bench web                   # leaderboard 500 x 50, 100 MB upload

Each run writes ``bench/results/<date>-<machine>-<kind>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine_info() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker": _run(["docker", "version", "--format", "{{.Server.Version}}"]),
        "commit": _run(["git", "rev-parse", "--short", "HEAD"]),
        "loadavg_start": list(os.getloadavg()),
    }


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_slug(info: dict[str, Any], override: str | None) -> str:
    name = override or f"{info['cores']}cpu-{info['host']}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)[:60]


def save(result: dict[str, Any], markdown: str, kind: str, machine: str | None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    info = result["machine"]
    stem = f"{info['date'][:10]}-{machine_slug(info, machine)}-{kind}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown)
    return RESULTS / f"{stem}.md"


# --------------------------------------------------------------------------- markdown


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def sandbox_markdown(result: dict[str, Any]) -> str:
    info = result["machine"]
    lines = [
        f"# Sandbox benchmark, {info['date'][:10]}",
        "",
        f"Machine: {info['cpu']} ({info['cores']} cores), {info['memory_gb']} GB, kernel "
        f"{info['kernel']}, Docker {info['docker'] or '–'}, commit {info['commit']}; "
        f"load average at start {info['loadavg_start'][0]:.2f}. Image {result['image']}"
        + (f" (*-before* modes: {result['before_image']})" if result.get("before_image") else "")
        + ", "
        f"GPU {result['gpu'] or 'none'}. {result['reps']} timed runs per cell after one "
        "untimed warm-up; p95 is nearest-rank (with few runs: the slowest).",
        "",
        "Seconds. *sandbox*: the backend's `run` (what isolation changes); *total*: "
        "`score_zip` from zip to verdict; *setup*/*predict*: the harness's own split. "
        "Ratios: median over the bare-process floor's median.",
        "",
        "| sample | mode | ran as | sandbox med | sandbox p95 | total med | total p95 "
        "| setup med | predict med | sandbox / floor | total / floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    if not result["summary"]:
        lines = lines[:5]  # end-to-end only: no sandbox table
    for sample, modes in result["summary"].items():
        for mode, cell in modes.items():
            ratio = result["ratios"].get(sample, {}).get(mode, {})
            lines.append(
                f"| {sample} | {mode} | {', '.join(cell['backends'])} "
                f"| {_ms(cell['sandbox']['median'])} | {_ms(cell['sandbox']['p95'])} "
                f"| {_ms(cell['total']['median'])} | {_ms(cell['total']['p95'])} "
                f"| {_ms(cell['setup']['median'])} | {_ms(cell['predict']['median'])} "
                f"| {ratio.get('sandbox') or '–'} | {ratio.get('total') or '–'} |"
            )
    for mode, reason in result["skipped"].items():
        lines.append(f"\nSkipped {mode}: {reason}")
    if result.get("e2e"):
        lines += [
            "",
            "## End to end (upload accepted → result stored, in-process, no queue wait)",
            "",
            "| sample | backend | ran as | statuses | accept med | score med | e2e med | e2e p95 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in result["e2e_summary"]:
            lines.append(
                f"| {row['sample']} | {row['mode']} | {', '.join(row['backends'])} "
                f"| {', '.join(row.get('statuses', []))} "
                f"| {_ms(row['accept']['median'])} | {_ms(row['score']['median'])} "
                f"| {_ms(row['e2e']['median'])} | {_ms(row['e2e']['p95'])} |"
            )
    return "\n".join(lines) + "\n"


def web_markdown(result: dict[str, Any]) -> str:
    info = result["machine"]
    board, upload = result["leaderboard"], result["upload"]
    return "\n".join(
        [
            f"# Web benchmark, {info['date'][:10]}",
            "",
            f"Machine: {info['cpu']} ({info['cores']} cores), {info['memory_gb']} GB; "
            f"PostgreSQL on localhost; commit {info['commit']}.",
            "",
            "| what | median | p95 | queries / growth |",
            "|---|---|---|---|",
            f"| leaderboard selector, {board['learners']} learners × "
            f"{board['submissions_per_learner']} submissions | "
            f"{board['selector_seconds']['median'] * 1000:.0f} ms | "
            f"{board['selector_seconds']['p95'] * 1000:.0f} ms | "
            f"{board['selector_queries']} queries |",
            f"| leaderboard page (instructor, HTML) | "
            f"{board['page_seconds']['median'] * 1000:.0f} ms | "
            f"{board['page_seconds']['p95'] * 1000:.0f} ms | {board['page_queries']} queries |",
            f"| {upload['megabytes']} MB upload (POST course page → stored, queued) | "
            f"{upload['seconds']['median']:.2f} s | {upload['seconds']['p95']:.2f} s | "
            f"RSS +{upload['rss_growth_mb']['median']:.1f} MB (max "
            f"{upload['rss_growth_mb']['p95']:.1f}); Python heap peak "
            f"{upload.get('python_heap_peak_mb', 0):.1f} MB |",
            "",
        ]
    )


# --------------------------------------------------------------------------- commands


def run_sandbox(args: argparse.Namespace) -> dict[str, Any]:
    from bench import sandbox

    info = machine_info()
    modes = tuple(args.modes) if args.modes else sandbox.MODES
    if args.e2e_only:
        result: dict[str, Any] = {"kind": "e2e", "reps": args.reps, "image": sandbox.IMAGE_CPU}
        result.update(gpu=None, summary={}, ratios={}, skipped={})
    else:
        result = sandbox.run_sandbox_bench(
            reps=args.reps, modes=modes, gpu=args.gpu, before_image=args.before_image
        )
    result["machine"] = info
    if args.e2e or args.e2e_only:
        result["e2e"] = e2e(args, sandbox)
        result["e2e_summary"] = e2e_summary(result["e2e"], sandbox)
    info["loadavg_end"] = list(os.getloadavg())
    return result


def e2e(args: argparse.Namespace, sandbox: Any) -> list[dict[str, Any]]:
    import tempfile

    from bench import web

    web.setup_django(args.database_url)
    work = Path(tempfile.mkdtemp(prefix="katakana-bench-e2e-"))
    samples = sandbox.prepare_samples(work, print)
    testset = sandbox.prepare_testset(work)
    return web.e2e_scoring(samples, testset, reps=args.reps, backends=("docker", "docker-warm"))


def e2e_summary(runs: list[dict[str, Any]], sandbox: Any) -> list[dict[str, Any]]:
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in runs:
        cells.setdefault((row["sample"], row["mode"]), []).append(row)
    summary = []
    for (sample, mode), rows in cells.items():
        # Only runs that reached a verdict count; an infrastructure retry is no timing.
        done = [r for r in rows if r["status"] in ("scored", "failed")]
        summary.append(
            {
                "sample": sample,
                "mode": mode,
                "backends": sorted({r["backend"] for r in done}),
                "statuses": sorted({r["status"] for r in rows}),
                **{k: sandbox.summarise([r[k] for r in done]) for k in ("accept", "score", "e2e")},
            }
        )
    return summary


def run_web(args: argparse.Namespace) -> dict[str, Any]:
    from bench import web

    info = machine_info()
    web.setup_django(args.database_url)
    result = {
        "kind": "web",
        "machine": info,
        "leaderboard": web.leaderboard_bench(learners=args.learners, per_learner=args.per_learner),
        "upload": web.upload_bench(megabytes=args.upload_mb),
    }
    web.drop_private_queues()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    from bench.web import DEFAULT_DATABASE_URL

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--machine", help="name for the result files (default: cores-host)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--no-save", action="store_true", help="print only")
    commands = parser.add_subparsers(dest="command")
    sb = commands.add_parser("sandbox", help="sandbox overhead against the bare process")
    sb.add_argument("--reps", type=int, default=5)
    sb.add_argument("--modes", nargs="+", choices=["process", "docker", "docker-warm", "bwrap"])
    sb.add_argument("--gpu", action="store_true", help="CUDA variant on the first GPU")
    sb.add_argument(
        "--before-image",
        help="also run docker and docker-warm on this image (an earlier recipe), side by side",
    )
    sb.add_argument("--e2e", action="store_true", help="also upload → stored via the DB")
    sb.add_argument("--e2e-only", action="store_true", help="only upload → stored")
    web = commands.add_parser("web", help="leaderboard and upload on PostgreSQL")
    web.add_argument("--learners", type=int, default=500)
    web.add_argument("--per-learner", type=int, default=50)
    web.add_argument("--upload-mb", type=int, default=100)
    # A bare `python -m bench` is the sandbox benchmark with its defaults.
    parser.set_defaults(reps=5, modes=None, gpu=False, e2e=False, e2e_only=False, before_image=None)
    args = parser.parse_args(argv)
    if args.command in (None, "sandbox"):
        result = run_sandbox(args)
        markdown = sandbox_markdown(result)
    else:
        result = run_web(args)
        markdown = web_markdown(result)
    print(markdown)
    if not args.no_save:
        print(f"saved {save(result, markdown, result['kind'], args.machine)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
