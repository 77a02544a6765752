//! Shell-style wildcards as Python's `fnmatch` and `glob` apply them.

use std::fs;
use std::path::{Component, Path, PathBuf};

/// Python's `fnmatch.fnmatch(name, pattern)` on POSIX (case-sensitive):
/// `*` matches any run of characters (including `/`), `?` one character,
/// `[abc]`/`[a-z]` one character of a set, `[!abc]` one character not in
/// it; a `[` without its closing `]` is literal. Salt uses it for
/// `salt-key` globs, `autosign_file` lines and glob targeting.
///
/// ```
/// use brine_protocol::config::fnmatch;
/// assert!(fnmatch("web01", "web*"));
/// assert!(fnmatch("web1", "web[0-9]"));
/// assert!(!fnmatch("db1", "web?"));
/// ```
pub fn fnmatch(name: &str, pattern: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    matches_from(&name, &pattern)
}

/// Iterative wildcard matching with single-star backtracking (linear in
/// practice, no recursion).
fn matches_from(name: &[char], pattern: &[char]) -> bool {
    let (mut n, mut p) = (0usize, 0usize);
    // where to resume after the last `*`: (pattern index after it, name index)
    let mut star: Option<(usize, usize)> = None;
    loop {
        if let Some(&pc) = pattern.get(p) {
            match pc {
                '*' => {
                    star = Some((p + 1, n));
                    p += 1;
                    continue;
                }
                '?' => {
                    if n < name.len() {
                        n += 1;
                        p += 1;
                        continue;
                    }
                }
                '[' => {
                    if let Some((set, next)) = CharSet::parse(pattern, p) {
                        if let Some(&c) = name.get(n)
                            && set.contains(c)
                        {
                            n += 1;
                            p = next;
                            continue;
                        }
                    } else if name.get(n) == Some(&'[') {
                        n += 1;
                        p += 1;
                        continue;
                    }
                }
                literal => {
                    if name.get(n) == Some(&literal) {
                        n += 1;
                        p += 1;
                        continue;
                    }
                }
            }
        } else if n == name.len() {
            return true;
        }
        // mismatch: let the last `*` swallow one more character
        match star {
            Some((after_star, from)) if from < name.len() => {
                star = Some((after_star, from + 1));
                p = after_star;
                n = from + 1;
            }
            _ => return false,
        }
    }
}

/// A `[...]` character class.
struct CharSet {
    negated: bool,
    ranges: Vec<(char, char)>,
}

impl CharSet {
    /// Parses the class starting at `pattern[open] == '['`; returns it and
    /// the index after its `]`, or `None` if it is not closed (then the `[`
    /// is a literal, as in Python).
    fn parse(pattern: &[char], open: usize) -> Option<(CharSet, usize)> {
        let mut i = open + 1;
        let negated = pattern.get(i) == Some(&'!');
        if negated {
            i += 1;
        }
        let start = i;
        let mut ranges = Vec::new();
        loop {
            let &c = pattern.get(i)?;
            // a `]` right after `[` or `[!` is a member, not the end
            if c == ']' && i > start {
                return Some((CharSet { negated, ranges }, i + 1));
            }
            if pattern.get(i + 1) == Some(&'-')
                && let Some(&hi) = pattern.get(i + 2)
                && hi != ']'
            {
                // a reversed range matches nothing, as in Python
                if c <= hi {
                    ranges.push((c, hi));
                }
                i += 3;
            } else {
                ranges.push((c, c));
                i += 1;
            }
        }
    }

    fn contains(&self, c: char) -> bool {
        let inside = self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
        inside != self.negated
    }
}

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Python's `glob.glob(pattern)` for one absolute or relative path
/// pattern: wildcards are allowed in every component; a wildcard does not
/// match names starting with `.` unless the pattern component does too.
/// Results are sorted. Unreadable directories contribute nothing.
pub(crate) fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut current: Vec<PathBuf> = vec![PathBuf::new()];
    let components: Vec<Component<'_>> = pattern.components().collect();
    for (index, component) in components.iter().enumerate() {
        let is_last = index + 1 == components.len();
        let part = component.as_os_str();
        let magic = part.to_str().filter(|s| has_magic(s));
        let mut next = Vec::new();
        for base in &current {
            match magic {
                None => {
                    let candidate = base.join(part);
                    // intermediate literal components are checked at the end
                    if !is_last || candidate.exists() {
                        next.push(candidate);
                    }
                }
                Some(pat) => {
                    let dir = if base.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        base.as_path()
                    };
                    let Ok(entries) = fs::read_dir(dir) else {
                        continue;
                    };
                    for entry in entries.flatten() {
                        let Ok(name) = entry.file_name().into_string() else {
                            continue;
                        };
                        if name.starts_with('.') && !pat.starts_with('.') {
                            continue;
                        }
                        if fnmatch(&name, pat) {
                            next.push(base.join(&name));
                        }
                    }
                }
            }
        }
        current = next;
        if current.is_empty() {
            break;
        }
    }
    current.retain(|p| p.exists());
    current.sort();
    current.dedup();
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_like_python() {
        let cases = [
            ("web01", "web*", true),
            ("web01", "*", true),
            ("", "*", true),
            ("", "", true),
            ("a", "", false),
            ("a/b", "a*b", true),
            ("abc", "a?c", true),
            ("ac", "a?c", false),
            ("web1", "web[0-9]", true),
            ("weba", "web[0-9]", false),
            ("weba", "web[!0-9]", true),
            ("]", "[]]", true),
            ("a]", "[!]]]", true),
            ("[x", "[x", true),
            ("-", "[a-]", true),
            ("b", "[z-a]", false),
            ("web01.example.com", "*.example.com", true),
            ("db01.example.org", "*.example.com", false),
            ("Web01", "web*", false),
            ("aaab", "*a*b", true),
            ("abcabd", "*abd", true),
            ("minion", "minion", true),
            ("minion2", "minion", false),
        ];
        for (name, pattern, want) in cases {
            assert_eq!(fnmatch(name, pattern), want, "{name:?} vs {pattern:?}");
        }
    }

    #[test]
    fn glob_sorted_skipping_dot_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("master.d");
        fs::create_dir(&d).unwrap();
        for name in ["b.conf", "a.conf", ".hidden.conf", "c.txt"] {
            fs::write(d.join(name), "").unwrap();
        }
        let got = glob(&d.join("*.conf"));
        assert_eq!(got, [d.join("a.conf"), d.join("b.conf")]);
        assert_eq!(glob(&d.join("a.conf")), [d.join("a.conf")]);
        assert!(glob(&d.join("zzz.conf")).is_empty());
        assert!(glob(&dir.path().join("nope.d").join("*.conf")).is_empty());
        assert_eq!(
            glob(&dir.path().join("*.d").join("b.*")),
            [d.join("b.conf")]
        );
    }
}
