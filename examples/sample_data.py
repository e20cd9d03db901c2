"""Make the example pipelines' input data: small images, weather readings, sales files.

    python examples/sample_data.py OUT_DIR

writes one folder per input repo (images/, readings/, stations/, sales/, data/) under OUT_DIR. The
data is generated, not downloaded, and is the same on every run.
"""

from __future__ import annotations

import json
import math
import pathlib
import random
import sys

SIZE = 96


def _pgm(pixel) -> bytes:
    body = bytes(max(0, min(255, int(pixel(x, y)))) for y in range(SIZE) for x in range(SIZE))
    return b"P5 %d %d 255\n" % (SIZE, SIZE) + body


def images() -> dict[str, bytes]:
    c = SIZE / 2
    return {
        "circle.pgm": _pgm(lambda x, y: 230 if math.hypot(x - c, y - c) < SIZE / 3 else 30),
        "squares.pgm": _pgm(lambda x, y: 220 if (x // 24 + y // 24) % 2 else 40),
        "rings.pgm": _pgm(lambda x, y: 128 + 120 * math.sin(math.hypot(x - c, y - c) / 4)),
        "diamond.pgm": _pgm(lambda x, y: 200 if abs(x - c) + abs(y - c) < SIZE / 3 else 60),
    }


STATIONS = {"ams": "Amsterdam Schiphol", "ber": "Berlin Tegel", "osl": "Oslo Blindern"}
STORES = ("store1", "store2", "store3")


def tables() -> dict[str, dict[str, bytes]]:
    rnd = random.Random(7)
    readings = {
        f"temps-{sid}.txt": " ".join(f"{rnd.uniform(-5, 15):.1f}" for _ in range(24)).encode() + b"\n"
        for sid in STATIONS
    }
    stations = {f"{sid}.json": json.dumps({"id": sid, "name": name}).encode() + b"\n"
                for sid, name in STATIONS.items()}
    sales = {}
    for day in ("2026-11-01", "2026-11-02", "2026-11-03"):
        for store in STORES:
            lines = [f"item{i},{rnd.randint(1, 50)}" for i in range(5)]
            sales[f"{day}-{store}.csv"] = ("\n".join(lines) + "\n").encode()
    data = {"hello.txt": b"hello, pachyderm\n", "numbers.txt": b"1 2 3 4 5\n"}
    return {"readings": readings, "stations": stations, "sales": sales, "data": data}


def write(out: pathlib.Path) -> None:
    repos = {"images": images(), **tables()}
    for repo, files in repos.items():
        for name, content in files.items():
            path = out / repo / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    write(pathlib.Path(sys.argv[1]))
