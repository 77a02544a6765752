//! Python's `fnmatch.fnmatchcase` (`*`, `?`, `[seq]`, `[!seq]`), which
//! `sys.doc`, `sys.list_functions` and `sys.list_modules` use for patterns.

/// Whether `name` matches the shell-style `pattern`, case-sensitively.
pub(crate) fn fnmatch(name: &str, pattern: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    // iterative matcher with backtracking to the last `*`
    let (mut n, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some('?') => {
                n += 1;
                p += 1;
                continue;
            }
            Some('[') => {
                if let Some((matched, next)) = class(&pattern, p, name[n]) {
                    if matched {
                        n += 1;
                        p = next;
                        continue;
                    }
                } else if name[n] == '[' {
                    // an unclosed `[` is a literal
                    n += 1;
                    p += 1;
                    continue;
                }
            }
            Some(&c) if c == name[n] => {
                n += 1;
                p += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, sn)) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class starting at `pattern[at] == '['`; returns
/// whether it matched and the index after the class, or `None` if the class
/// is not closed (then `[` is literal, as in Python).
fn class(pattern: &[char], at: usize, c: char) -> Option<(bool, usize)> {
    let mut i = at + 1;
    let negate = matches!(pattern.get(i), Some('!'));
    if negate {
        i += 1;
    }
    let start = i;
    let mut matched = false;
    loop {
        let &first = pattern.get(i)?;
        if first == ']' && i > start {
            return Some((matched != negate, i + 1));
        }
        if pattern.get(i + 1) == Some(&'-') && pattern.get(i + 2).is_some_and(|&e| e != ']') {
            let &last = pattern.get(i + 2)?;
            if first <= c && c <= last {
                matched = true;
            }
            i += 3;
        } else {
            if first == c {
                matched = true;
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn matches_like_python() {
        assert!(fnmatch("test.ping", "test.*"));
        assert!(fnmatch("test.ping", "test.pin*"));
        assert!(fnmatch("test.ping", "*"));
        assert!(!fnmatch("test.ping", "test"));
        assert!(fnmatch("test.ping", "t?st.p[aeiou]ng"));
        assert!(!fnmatch("test.ping", "t?st.p[!i]ng"));
        assert!(fnmatch("a[b", "a[b"));
        assert!(fnmatch("cmd.run_all", "cmd.*_all"));
        assert!(fnmatch("x9", "x[0-9]"));
        assert!(!fnmatch("xa", "x[0-9]"));
        assert!(fnmatch("", "*"));
        assert!(!fnmatch("", "?"));
    }
}
