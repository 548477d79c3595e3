/// Names every record already has; a field may not take them.
pub const RESERVED_NAMES: &[&str] = &["id", "version", "created_at", "updated_at"];

/// API names are what reports, SQL and Flight SQL columns are called, so they stay plain:
/// a lowercase letter, then lowercase letters, digits or `_`, at most 63 characters
/// (PostgreSQL's identifier length).
pub fn check_api_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if name.is_empty() || name.len() > 63 || !first_ok || !rest_ok {
        return Err(format!(
            "`{name}` is not a valid API name: use 1 to 63 characters, a lowercase letter first, then lowercase letters, digits or `_`"
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!("`{name}` is reserved for a system column"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names_and_refuses_others() {
        assert!(check_api_name("annual_revenue2").is_ok());
        for bad in ["", "Amount", "2x", "a-b", "é", "id", &"a".repeat(64)] {
            assert!(check_api_name(bad).is_err(), "{bad}");
        }
    }
}
