"""Turn pytest-benchmark JSON files into the README's benchmark tables.

    python -m pytest bench --benchmark-json=bench-results/all.json
    python bench/report.py bench-results/all.json
"""
import json
import sys


def fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, list):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    return str(v)


def main(paths):
    for path in paths:
        data = json.load(open(path))
        print(f"<!-- {path}: {data['machine_info'].get('cpu', {}).get('brand_raw', '')}, "
              f"{data['datetime']} -->")
        print("| benchmark | median | measured |")
        print("|---|---|---|")
        for b in data["benchmarks"]:
            med = b["stats"]["median"] if b.get("stats") else float("nan")
            extra = "; ".join(f"{k} {fmt(v)}" for k, v in b.get("extra_info", {}).items())
            print(f"| {b['name']} | {med * 1e3:.3g} ms | {extra} |")
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
