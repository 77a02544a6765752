use super::KeyError;

/// Longest id that can still be a file name on common file systems.
const MAX_ID_BYTES: usize = 255;

/// Checks that a minion id can safely name a key file: not empty, not `.` or
/// `..`, no `/`, `\` or NUL (Salt's `valid_id`), and at most 255 bytes.
///
/// # Errors
/// [`KeyError::InvalidId`] saying what is wrong.
pub fn validate_minion_id(id: &str) -> Result<(), KeyError> {
    let reason = if id.is_empty() {
        "empty"
    } else if id == "." || id == ".." {
        "a relative directory name"
    } else if id.contains(['/', '\\']) {
        "contains a path separator"
    } else if id.contains('\0') {
        "contains NUL"
    } else if id.len() > MAX_ID_BYTES {
        "longer than 255 bytes"
    } else {
        return Ok(());
    };
    Err(KeyError::InvalidId {
        id: id.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        for id in [
            "lab-minion",
            "web01.example.com",
            "a",
            "...",
            "ünïcode",
            "with space",
        ] {
            validate_minion_id(id).unwrap();
        }
    }

    #[test]
    fn rejects_ids_that_are_not_file_names() {
        let long = "x".repeat(256);
        for id in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "a/b",
            "a\\b",
            "nul\0",
            "/",
            long.as_str(),
        ] {
            assert!(
                matches!(validate_minion_id(id), Err(KeyError::InvalidId { .. })),
                "{id:?}"
            );
        }
    }
}
