//! Attribute key patterns: exact keys, or globs where `*` matches any run
//! of bytes and `?` exactly one. Keys are matched as the page wrote them
//! (case-sensitive), against the bytes the decoder already holds.

/// A compiled key pattern.
#[derive(Debug, Clone)]
pub struct Glob {
    pat: Vec<u8>,
    wild: bool,
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        Self { pat: pattern.as_bytes().to_vec(), wild: pattern.contains(['*', '?']) }
    }

    /// The length of the only key it matches, when it has no wildcard.
    pub fn exact_len(&self) -> Option<usize> {
        (!self.wild).then_some(self.pat.len())
    }

    pub fn matches(&self, key: &[u8]) -> bool {
        if !self.wild {
            return self.pat == key;
        }
        // The classic two-pointer match: on a mismatch, the last `*` takes
        // one more byte. Linear in practice, never exponential.
        let (p, k) = (&self.pat, key);
        let (mut pi, mut ki) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ki < k.len() {
            match p.get(pi) {
                Some(b'*') => {
                    star = Some((pi, ki));
                    pi += 1;
                }
                Some(&c) if c == b'?' || Some(&c) == k.get(ki) => {
                    pi += 1;
                    ki += 1;
                }
                _ => match star {
                    Some((sp, sk)) => {
                        pi = sp + 1;
                        ki = sk + 1;
                        star = Some((sp, sk + 1));
                    }
                    None => return false,
                },
            }
        }
        p.get(pi..).is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn exact_and_wildcards() {
        let cases = [
            ("arguments", "arguments", true),
            ("arguments", "argument", false),
            ("arguments", "Arguments", false),
            ("user.*", "user.email", true),
            ("user.*", "user.", true),
            ("user.*", "users", false),
            ("*Id", "accountId", true),
            ("*Id", "accountid", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "", true),
            ("*", "anything", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("**x", "x", true),
        ];
        for (pat, key, want) in cases {
            assert_eq!(Glob::new(pat).matches(key.as_bytes()), want, "{pat} vs {key}");
        }
    }
}
