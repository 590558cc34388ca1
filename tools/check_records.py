"""Check every kept record under results/ (or --root): each is one run whose results.json and config.json agree, no run is
recorded twice, and every table has the runs it is drawn from. Prints each problem; exit 1 if there is any.

    python tools/check_records.py
    python tools/check_records.py --root some/other/results --no-tables
"""
from __future__ import annotations
import argparse, sys
from pathlib import Path
from advnorm.tables import check_records, expected_records, results_dir

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--root', default=None, help='records folder (default: results/ of the checkout)')
    ap.add_argument('--no-tables', action='store_true', help='check the records only, not which runs each table expects')
    a = ap.parse_args(argv)
    root = Path(a.root or results_dir())
    problems = check_records(root, {} if a.no_tables else None)
    n = sum(1 for _ in root.rglob('results.json'))
    for p in problems: print('FAIL:', p)
    tables = '' if a.no_tables else f', {len(expected_records())} tables'
    print(f'{n} records under {root.name}/{tables}: ' + (f'{len(problems)} problem(s)' if problems else 'all hold together'))
    return 1 if problems else 0

if __name__ == '__main__': sys.exit(main())
