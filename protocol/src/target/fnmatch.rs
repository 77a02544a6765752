//! Shell-style patterns with the exact semantics of Python's `fnmatch`
//! (`*`, `?`, `[seq]`, `[!seq]`, no escaping, `*` crosses every character).
//!
//! Salt matches minion ids with `fnmatch.fnmatch`, which is case-sensitive
//! on POSIX (`os.path.normcase` does nothing there), and grain values with
//! both sides lowercased first; [`Glob::is_match`] and
//! [`Glob::is_match_lowercase`] are those two uses. Matching walks the
//! pattern with the classic single-backtrack algorithm, which gives the
//! same answers as Python's translated regular expression, in O(pattern ×
//! text) time and without allocating.

/// A compiled shell pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// One character, as written.
    Literal(char),
    /// `?`: any one character.
    Any,
    /// `*`: any run of characters, including none.
    Star,
    /// `[...]`: one character in (or, negated, not in) the inclusive ranges.
    Set {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn accepts(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::Any => true,
            Token::Star => false,
            Token::Set { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

impl Glob {
    /// Compiles `pattern` as written.
    pub(crate) fn new(pattern: &str) -> Glob {
        Glob::from_chars(&pattern.chars().collect::<Vec<_>>())
    }

    /// Compiles `pattern` lowercased, as Salt's grain matcher does before matching.
    pub(crate) fn new_lowercase(pattern: &str) -> Glob {
        Glob::from_chars(&lowercase_chars(pattern).collect::<Vec<_>>())
    }

    /// Whether the whole of `text` matches, case-sensitively (`fnmatch.fnmatch` on POSIX).
    pub(crate) fn is_match(&self, text: &str) -> bool {
        self.matches(text.chars())
    }

    /// Whether the whole of `text`, lowercased, matches (Salt's grain value match).
    pub(crate) fn is_match_lowercase(&self, text: &str) -> bool {
        self.matches(lowercase_chars(text))
    }

    fn from_chars(p: &[char]) -> Glob {
        let mut tokens = Vec::new();
        let mut i = 0;
        while let Some(&c) = p.get(i) {
            i += 1;
            match c {
                '*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => tokens.push(Token::Any),
                '[' => match set_end(p, i) {
                    Some(end) => {
                        tokens.push(parse_set(p, i, end));
                        i = end + 1;
                    }
                    None => tokens.push(Token::Literal('[')),
                },
                _ => tokens.push(Token::Literal(c)),
            }
        }
        Glob { tokens }
    }

    fn matches<I: Iterator<Item = char> + Clone>(&self, text: I) -> bool {
        let mut text = text;
        let mut p = 0;
        // After a `*`: the pattern index following it and the text position
        // the star's run would end at if it had to take one more character.
        let mut retry: Option<(usize, I)> = None;
        loop {
            match self.tokens.get(p) {
                Some(Token::Star) => {
                    p += 1;
                    retry = Some((p, text.clone()));
                    continue;
                }
                Some(token) => {
                    let mut ahead = text.clone();
                    if ahead.next().is_some_and(|c| token.accepts(c)) {
                        text = ahead;
                        p += 1;
                        continue;
                    }
                }
                None => {
                    if text.clone().next().is_none() {
                        return true;
                    }
                }
            }
            match retry.as_mut() {
                Some((after_star, resume)) => {
                    if resume.next().is_none() {
                        return false;
                    }
                    p = *after_star;
                    text = resume.clone();
                }
                None => return false,
            }
        }
    }
}

/// Lowercases character by character (Python's `str.lower` but for the
/// final-sigma rule, which both sides of a comparison share anyway).
pub(crate) fn lowercase_chars(s: &str) -> impl Iterator<Item = char> + Clone + '_ {
    s.chars().flat_map(char::to_lowercase)
}

/// Where the `]` closing a set opened just before `start` is, as Python finds
/// it: a `!` and then a `]` right after the `[` belong to the set.
fn set_end(p: &[char], start: usize) -> Option<usize> {
    let mut j = start;
    if p.get(j) == Some(&'!') {
        j += 1;
    }
    if p.get(j) == Some(&']') {
        j += 1;
    }
    while let Some(&c) = p.get(j) {
        if c == ']' {
            return Some(j);
        }
        j += 1;
    }
    None
}

/// The set between `start` and `end` (exclusive), with Python's handling of
/// hyphens: a `-` right after the opening (or after `!`) is literal, a `-`
/// right after a range is literal, a trailing `-` is literal, and ranges
/// whose bounds are reversed are dropped.
fn parse_set(p: &[char], start: usize, end: usize) -> Token {
    let stuff = p.get(start..end).unwrap_or_default();
    let negated = stuff.first() == Some(&'!');
    let skip = usize::from(negated);
    if !stuff.contains(&'-') {
        let ranges = stuff.iter().skip(skip).map(|&c| (c, c)).collect();
        return Token::Set { negated, ranges };
    }
    let chunks = hyphen_chunks(stuff, negated);
    let mut ranges = Vec::new();
    let last = chunks.len().saturating_sub(1);
    for (t, chunk) in chunks.iter().enumerate() {
        let mut from = if t == 0 { skip } else { 1 };
        let mut to = chunk.len();
        if t > 0
            && let (Some(&lo), Some(&hi)) = (chunks[t - 1].last(), chunk.first())
        {
            ranges.push((lo, hi));
        }
        if t < last {
            to = to.saturating_sub(1);
        }
        from = from.min(to);
        ranges.extend(
            chunk
                .get(from..to)
                .unwrap_or_default()
                .iter()
                .map(|&c| (c, c)),
        );
    }
    Token::Set { negated, ranges }
}

/// Splits a set body on the hyphens that form ranges and merges away
/// reversed ranges, as `fnmatch.translate` does.
fn hyphen_chunks(stuff: &[char], negated: bool) -> Vec<Vec<char>> {
    let mut chunks: Vec<Vec<char>> = Vec::new();
    let mut from = 0;
    let mut k = if negated { 2 } else { 1 };
    while let Some(found) = stuff
        .get(k..)
        .and_then(|rest| rest.iter().position(|&c| c == '-'))
    {
        let at = k + found;
        chunks.push(stuff.get(from..at).unwrap_or_default().to_vec());
        from = at + 1;
        k = at + 3;
    }
    let tail = stuff.get(from..).unwrap_or_default();
    if !tail.is_empty() || chunks.is_empty() {
        chunks.push(tail.to_vec());
    } else if let Some(last) = chunks.last_mut() {
        last.push('-');
    }
    let mut k = chunks.len();
    while k > 1 {
        k -= 1;
        let reversed = matches!(
            (chunks[k - 1].last(), chunks[k].first()),
            (Some(a), Some(b)) if a > b
        );
        if reversed {
            let next = chunks.remove(k);
            let prev = &mut chunks[k - 1];
            prev.pop();
            prev.extend(next.iter().skip(1));
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).is_match(text)
    }

    #[test]
    fn stars_and_questions() {
        assert!(m("*", ""));
        assert!(m("*", "anything/at all\n"));
        assert!(m("web*", "web01"));
        assert!(!m("web*", "db-web01"));
        assert!(m("*web*", "db-web01"));
        assert!(m("w?b", "wéb"));
        assert!(!m("w?b", "wb"));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(!m("a*b*c", "aXbYbZ"));
        assert!(m("**a", "ba"));
        assert!(!m("web", "Web"));
    }

    #[test]
    fn sets_follow_python() {
        assert!(m("[ab]x", "bx"));
        assert!(!m("[!ab]x", "bx"));
        assert!(m("[!ab]x", "cx"));
        assert!(m("[]]", "]"));
        assert!(m("[!]]", "a"));
        assert!(!m("[!]]", "]"));
        assert!(m("[a-c]", "b"));
        assert!(m("[-a]", "-"));
        assert!(m("[a-]", "-"));
        assert!(m("[a-c-e]", "-"));
        assert!(!m("[a-c-e]", "d"));
        assert!(!m("[z-a]", "m"), "a reversed range matches nothing");
        assert!(m("[!z-a]", "m"), "negated empty set matches anything");
        assert!(m("[", "["));
        assert!(m("[a", "[a"));
        assert!(m("[\\]", "\\"));
        assert!(m("[^a]", "^"));
    }

    #[test]
    fn lowercase_variant() {
        let g = Glob::new_lowercase("UBU*");
        assert!(g.is_match_lowercase("Ubuntu"));
        assert!(!Glob::new("ubu*").is_match("Ubuntu"));
    }
}
