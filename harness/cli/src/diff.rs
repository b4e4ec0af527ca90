//! `diff buggy.rs fixed.rs`, as `debuglab solution` shows it.

use debuglab_harness::terminal::{paint, styles};
use similar::{ChangeTag, TextDiff};

/// A unified diff from `buggy` to `fixed` (three lines of context), with
/// removed lines red and added lines green when `color` is set.
pub fn unified(buggy: &str, fixed: &str, color: bool) -> String {
    let diff = TextDiff::from_lines(buggy, fixed);
    let mut out = String::from("--- src/buggy.rs\n+++ src/fixed.rs\n");
    for group in diff.grouped_ops(3) {
        let (first, last) = (&group[0], &group[group.len() - 1]);
        let old = first.old_range().start..last.old_range().end;
        let new = first.new_range().start..last.new_range().end;
        out.push_str(&format!(
            "@@ -{},{} +{},{} @@\n",
            old.start + 1,
            old.len(),
            new.start + 1,
            new.len()
        ));
        for op in &group {
            for change in diff.iter_changes(op) {
                let (sign, style) = match change.tag() {
                    ChangeTag::Delete => ('-', styles::REMOVED),
                    ChangeTag::Insert => ('+', styles::ADDED),
                    ChangeTag::Equal => (' ', anstyle::Style::new()),
                };
                let line = format!("{sign}{}", change.value().trim_end_matches('\n'));
                out.push_str(&paint(color, style, &line));
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_what_changed_with_context() {
        let buggy = "a\nb\nc\nd\n";
        let fixed = "a\nb\nC\nd\n";
        assert_eq!(
            unified(buggy, fixed, false),
            "--- src/buggy.rs\n+++ src/fixed.rs\n@@ -1,4 +1,4 @@\n a\n b\n-c\n+C\n d\n"
        );
        assert!(unified(buggy, fixed, true).contains(&paint(true, styles::REMOVED, "-c")));
    }
}
