"""A third-party Flight SQL client (ADBC's Flight SQL driver) against Oneo.

Usage: flight_adbc.py URI KEY OTHER_KEY

Connects with basic auth (any user name, the workspace API key as password), lists the
catalog, runs a query and a prepared statement with a parameter, tries statements that must
be refused, then connects with another workspace's key. Prints one JSON document; the Rust
test compares it with the REST API's answers.
"""

import json
import sys

import adbc_driver_flightsql.dbapi as flight_sql


def connect(uri, key):
    # Autocommit: the server has no transactions, and ADBC warns when it can't turn it off.
    return flight_sql.connect(uri, db_kwargs={"username": "adbc", "password": key}, autocommit=True)


def table_names(conn):
    """Every (catalog, schema, table) the connection may see, from GetObjects."""
    objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    names = []
    for catalog in objects:
        for schema in catalog["catalog_db_schemas"] or []:
            for table in schema["db_schema_tables"] or []:
                names.append([catalog["catalog_name"], schema["db_schema_name"], table["table_name"]])
    return sorted(names)


def text(value):
    return None if value is None else str(value)


def main():
    uri, key, other_key = sys.argv[1:4]
    out = {}
    with connect(uri, key) as conn:
        out["tables"] = table_names(conn)
        out["deal_columns"] = conn.adbc_get_table_schema("deal", db_schema_filter="crm").names
        with conn.cursor() as cur:
            cur.execute(
                "SELECT stage, count(*) AS n, sum(amount) AS total FROM crm.deal GROUP BY stage ORDER BY stage"
            )
            table = cur.fetch_arrow_table()
            out["by_stage"] = [[text(v) for v in row.values()] for row in table.to_pylist()]
            out["by_stage_types"] = [str(t) for t in table.schema.types]

            cur.execute("SELECT count(*) AS n FROM crm.deal WHERE stage = $1", parameters=("closed_won",))
            out["won"] = cur.fetchone()[0]
            cur.execute("SELECT count(*) AS n FROM crm.deal WHERE stage = $1", parameters=("closed_lost",))
            out["lost"] = cur.fetchone()[0]

            refused = {}
            for sql in [
                "DROP TABLE crm.deal",
                "INSERT INTO crm.deal (id) VALUES ('x')",
                "COPY crm.deal TO '/tmp/oneo_adbc_deals.csv'",
                "CREATE EXTERNAL TABLE f STORED AS CSV LOCATION '/etc/passwd'",
                "SELECT * FROM '/etc/passwd'",
            ]:
                try:
                    cur.execute(sql)
                    cur.fetchall()
                    refused[sql] = None
                except Exception as e:  # the driver's error carries the server's status
                    refused[sql] = f"{type(e).__name__}: {e}"
            out["refused"] = refused

    with connect(uri, other_key) as conn:
        out["other_tables"] = table_names(conn)
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) AS n FROM crm.deal")
            out["other_deals"] = cur.fetchone()[0]
            try:
                cur.execute("SELECT count(*) FROM crm.project")
                cur.fetchall()
                out["other_project"] = None
            except Exception as e:
                out["other_project"] = f"{type(e).__name__}: {e}"

    try:
        with connect(uri, "oneo_not_a_key") as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()
        out["bad_key"] = None
    except Exception as e:
        out["bad_key"] = f"{type(e).__name__}: {e}"

    print(json.dumps(out))


if __name__ == "__main__":
    main()
