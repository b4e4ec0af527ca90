//! Tables on the terminal (comfy-table): rounded lines for a person, a
//! Markdown table when the output goes to a file or a CI log.

use comfy_table::{presets, CellAlignment, Table};

use debuglab_harness::terminal;

/// Prints `rows` under `headers`, the columns in `numeric` aligned right.
pub fn print(headers: &[&str], rows: &[Vec<String>], numeric: &[usize]) {
    println!(
        "{}",
        render(headers, rows, numeric, terminal::stdout_is_terminal())
    );
}

/// The table as text: box-drawing lines for a terminal, Markdown otherwise.
pub fn render(
    headers: &[&str],
    rows: &[Vec<String>],
    numeric: &[usize],
    for_terminal: bool,
) -> String {
    let mut table = Table::new();
    table.load_preset(if for_terminal {
        presets::UTF8_FULL_CONDENSED
    } else {
        presets::ASCII_MARKDOWN
    });
    table.set_header(headers.to_vec());
    for row in rows {
        table.add_row(row.clone());
    }
    for index in numeric {
        if let Some(column) = table.column_mut(*index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_markdown_off_a_terminal_with_numbers_on_the_right() {
        let rows = vec![
            vec!["slow-query".to_owned(), "12,000".to_owned()],
            vec!["n-plus-one".to_owned(), "7".to_owned()],
        ];
        let text = render(&["scenario", "rows"], &rows, &[1], false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "| scenario   |   rows |", "{text}");
        assert!(lines[1].starts_with("|--"), "{text}");
        assert_eq!(lines[3], "| n-plus-one |      7 |", "{text}");
        assert!(render(&["a"], &[], &[], true).contains('─'));
    }
}
