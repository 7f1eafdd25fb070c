//! The built-in `colors` group: colour names to `#RRGGBB`, the example
//! groupcache's own documentation uses. The table is `colors.txt`, shared
//! with the Go interop node so both serve the same data.

use peercache::{loader_fn, LoadError, Loader, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The table, as shipped.
pub const TABLE: &str = include_str!("colors.txt");

/// The table's entries: lowercase name and `#RRGGBB`.
pub fn entries() -> impl Iterator<Item = (&'static str, &'static str)> {
    TABLE
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("//"))
        .filter_map(|line| line.split_once(' '))
}

/// The loader of group `colors`: a name in the table, or not found.
pub fn loader() -> impl Loader {
    let table: Arc<HashMap<&'static str, &'static str>> = Arc::new(entries().collect());
    loader_fn(move |name: String| {
        let table = Arc::clone(&table);
        async move {
            match table.get(name.as_str()) {
                Some(hex) => Ok(Value::from(*hex)),
                None => Err(LoadError::NotFound),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primaries_are_pure_and_every_entry_is_well_formed() {
        let table: HashMap<_, _> = entries().collect();
        assert_eq!(table["red"], "#FF0000");
        assert_eq!(table["green"], "#00FF00");
        assert_eq!(table["blue"], "#0000FF");
        assert_eq!(table["black"], "#000000");
        assert_eq!(table["white"], "#FFFFFF");
        assert!(table.len() >= 30);
        for (name, hex) in &table {
            assert!(name.bytes().all(|b| b.is_ascii_lowercase()), "{name}");
            assert!(
                hex.len() == 7
                    && hex.starts_with('#')
                    && hex[1..]
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
                "{name} {hex}"
            );
        }
    }
}
