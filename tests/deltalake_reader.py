"""An independent reader of Oneo's lake: opens a Delta table with the `deltalake` package
(delta-rs's Python binding, from PyPI) and prints its rows as JSON, each value as text.

    python3 tests/deltalake_reader.py <table path> <column> [<column> ...]

Prints {"rows": N, "values": {id: [text or null, ...]}, "app_version": txn version}.
"""
import json
import sys

from deltalake import DeltaTable


def text(v):
    if v is None:
        return None
    if isinstance(v, list):
        return "|".join(str(x) for x in v)
    return str(v)


def main():
    path, columns = sys.argv[1], sys.argv[2:]
    table = DeltaTable(path)
    data = table.to_pyarrow_table(columns=["id", *columns]).to_pylist()
    print(json.dumps({
        "rows": len(data),
        "values": {r["id"]: [text(r[c]) for c in columns] for r in data},
        "app_version": table.transaction_version("oneo-ingest"),
    }))


if __name__ == "__main__":
    main()
