"""What calamine does not tell about an .xls sheet (Excel 97–2003), read with xlrd:
number formats that decide the digits (`00000`, `0.00`) and hidden rows.

xlrd parses the whole workbook again with its formatting records, so this costs a second
read; an .xls sheet holds at most 65,536 rows, which keeps it bounded. Best effort: a file
xlrd cannot read gives no facts, and the cells read as calamine gives them.
"""

from __future__ import annotations

from importer.loader.cells import NumberFormat, number_format
from importer.loader.xlsxparts import SheetFacts


def xls_sheet_facts(path: str, sheet: str) -> SheetFacts:
    facts = SheetFacts()
    try:
        import xlrd  # imported here: only .xls inputs pay for it

        book = xlrd.open_workbook(path, formatting_info=True, on_demand=True)
    except Exception:  # xlrd raises many types for files calamine read fine
        return facts
    try:
        table = book.sheet_by_name(sheet)
        shapes: dict[int, NumberFormat | None] = {}
        for index, info in table.rowinfo_map.items():
            if info.hidden:
                facts.hidden_rows.add(index)
        for row in range(table.nrows):
            for column, kind in enumerate(table.row_types(row)):
                if kind != xlrd.XL_CELL_NUMBER:
                    continue
                xf_index = table.cell_xf_index(row, column)
                if xf_index not in shapes:
                    fmt = book.format_map.get(book.xf_list[xf_index].format_key)
                    shapes[xf_index] = number_format(fmt.format_str) if fmt is not None else None
                shape = shapes[xf_index]
                if shape is not None:
                    facts.formats.setdefault(row, {})[column] = shape
    except Exception:  # see above: no facts rather than no file
        return SheetFacts()
    finally:
        book.release_resources()
    return facts
