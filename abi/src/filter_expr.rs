//! Compiling `-F` capture-filter expressions (the subset of pcap-filter syntax users write for
//! tcpcopy and intercept) into the [`FilterProgram`] both XDP programs evaluate.
//!
//! Supported: `tcp`, `[src|dst] port N`, `[src|dst] host ADDR`, `[src|dst] net ADDR/LEN`, `and`
//! (`&&`), `or` (`||`), `not` (`!`) and parentheses. IPv4 and IPv6 addresses.

use std::{
    boxed::Box,
    format,
    net::IpAddr,
    string::{String, ToString},
    vec,
    vec::Vec,
};

use crate::filter::{Atom, FilterProgram, MAX_ATOMS, MAX_TERMS, Term, kind, v4_mapped};

/// The forms `-F` understands, for error messages.
pub const SUPPORTED: &str =
    "tcp, [src|dst] port N, [src|dst] host ADDR, [src|dst] net ADDR/LEN, and/&&, or/||, not/!, ( )";

/// Why an expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("filter {expr:?}: {reason} (supported: {SUPPORTED})")]
    Syntax { expr: String, reason: String },
    #[error(
        "filter {0:?} expands to more than {MAX_TERMS} alternatives of at most {MAX_ATOMS} tests each; simplify it"
    )]
    TooComplex(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr {
    True,
    Atom(Atom),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
}

fn tokenize(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let two = |next: char, chars: &mut core::iter::Peekable<core::str::Chars<'_>>| {
            chars.peek() == Some(&next)
        };
        let single = match c {
            '(' | ')' => Some(c.to_string()),
            '!' => Some("!".into()),
            '&' if two('&', &mut chars) => {
                chars.next();
                Some("&&".into())
            }
            '|' if two('|', &mut chars) => {
                chars.next();
                Some("||".into())
            }
            _ => None,
        };
        if c.is_whitespace() || single.is_some() {
            if !cur.is_empty() {
                out.push(core::mem::take(&mut cur));
            }
            out.extend(single);
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

struct Parser<'a> {
    toks: Vec<String>,
    at: usize,
    expr: &'a str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Src,
    Dst,
    Either,
}

impl Parser<'_> {
    fn err(&self, reason: impl Into<String>) -> FilterError {
        FilterError::Syntax {
            expr: self.expr.into(),
            reason: reason.into(),
        }
    }

    fn peek(&self) -> Option<&str> {
        self.toks.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Option<String> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut e = self.and()?;
        while matches!(self.peek(), Some("or" | "||")) {
            self.next();
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut e = self.unary()?;
        loop {
            match self.peek() {
                Some("and" | "&&") => {
                    self.next();
                }
                // pcap lets `and` be implied between primitives only in some forms; we require it.
                _ => return Ok(e),
            }
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        match self.peek() {
            Some("not" | "!") => {
                self.next();
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some("(") => {
                self.next();
                let e = self.or()?;
                if self.next().as_deref() != Some(")") {
                    return Err(self.err("missing )"));
                }
                Ok(e)
            }
            Some(_) => self.primitive(),
            None => Err(self.err("expression ends too early")),
        }
    }

    fn primitive(&mut self) -> Result<Expr, FilterError> {
        let mut dir = Dir::Either;
        let word = self.next().unwrap_or_default();
        let word = match word.as_str() {
            "tcp" => return Ok(Expr::True),
            "src" | "dst" => {
                dir = if word == "src" { Dir::Src } else { Dir::Dst };
                self.next().ok_or_else(|| {
                    self.err(format!("`{word}` must be followed by port, host or net"))
                })?
            }
            _ => word,
        };
        let value = self
            .next()
            .ok_or_else(|| self.err(format!("`{word}` needs a value")))?;
        let (src, dst) = match word.as_str() {
            "port" => {
                let port: u16 = value
                    .parse()
                    .map_err(|_| self.err(format!("bad port {value:?}")))?;
                let atom = |k| Atom {
                    kind: k,
                    port: u32::from(port),
                    ..Atom::default()
                };
                (atom(kind::SRC_PORT), atom(kind::DST_PORT))
            }
            "host" | "net" => {
                let (ip, len) = match value.split_once('/') {
                    Some((ip, len)) if word == "net" => (ip, Some(len)),
                    _ => (value.as_str(), None),
                };
                let ip: IpAddr = ip
                    .parse()
                    .map_err(|_| self.err(format!("bad address {value:?}")))?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let len: u32 = match len {
                    Some(l) => l
                        .parse()
                        .ok()
                        .filter(|l| *l <= max)
                        .ok_or_else(|| self.err(format!("bad prefix length in {value:?}")))?,
                    None => max,
                };
                let (addr, mask) = address(ip, len);
                let atom = |k| Atom {
                    kind: k,
                    addr: [addr[0] & mask[0], addr[1] & mask[1]],
                    mask,
                    ..Atom::default()
                };
                (atom(kind::SRC_ADDR), atom(kind::DST_ADDR))
            }
            other => return Err(self.err(format!("`{other}` is not supported"))),
        };
        Ok(match dir {
            Dir::Src => Expr::Atom(src),
            Dir::Dst => Expr::Atom(dst),
            Dir::Either => Expr::Or(Box::new(Expr::Atom(src)), Box::new(Expr::Atom(dst))),
        })
    }
}

/// An address and prefix length as the filter's 128-bit value and mask.
fn address(ip: IpAddr, len: u32) -> ([u64; 2], [u64; 2]) {
    let (value, prefix) = match ip {
        IpAddr::V4(a) => (v4_mapped(a.octets()), 96 + len),
        IpAddr::V6(a) => {
            let o = a.octets();
            let hi = u64::from_be_bytes([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]]);
            let lo = u64::from_be_bytes([o[8], o[9], o[10], o[11], o[12], o[13], o[14], o[15]]);
            ([hi, lo], len)
        }
    };
    let half = |bits: u32| {
        if bits == 0 {
            0
        } else if bits >= 64 {
            u64::MAX
        } else {
            u64::MAX << (64 - bits)
        }
    };
    (
        value,
        [half(prefix.min(64)), half(prefix.saturating_sub(64))],
    )
}

/// Disjunctive normal form: a list of alternatives, each a list of (possibly negated) atoms.
type Dnf = Vec<Vec<Atom>>;

/// Words an expression may have: bounds the parser's recursion and the work below.
pub const MAX_TOKENS: usize = 256;

/// The expression expanded into DNF, or `None` as soon as a part of it has more distinct
/// alternatives, or longer ones, than the program holds. Distinct alternatives never get fewer
/// as the expansion goes up (but for an AND with nothing, which no useful filter has), so the
/// work stays bounded: at most `MAX_TERMS`² alternatives at any step, where the unbounded
/// expansion of `port 1 and port 2 and ...` doubles with every term.
fn dnf(expr: &Expr, negated: bool) -> Option<Dnf> {
    let alternatives = match (expr, negated) {
        (Expr::True, false) => vec![vec![]],
        (Expr::True, true) => vec![],
        (Expr::Atom(a), neg) => {
            let mut a = *a;
            a.negate = u32::from(neg);
            vec![vec![a]]
        }
        (Expr::Not(inner), neg) => dnf(inner, !neg)?,
        (Expr::Or(left, right), false) | (Expr::And(left, right), true) => {
            let mut alternatives = dnf(left, negated)?;
            alternatives.extend(dnf(right, negated)?);
            alternatives
        }
        (Expr::And(left, right), false) | (Expr::Or(left, right), true) => {
            let (left, right) = (dnf(left, negated)?, dnf(right, negated)?);
            let mut alternatives = Vec::new();
            for l in &left {
                for r in &right {
                    let mut both = l.clone();
                    both.extend(r.iter().copied());
                    alternatives.push(both);
                }
            }
            alternatives
        }
    };
    let mut distinct: Dnf = Vec::with_capacity(alternatives.len());
    for a in alternatives {
        if !distinct.contains(&a) {
            distinct.push(a);
        }
    }
    (distinct.len() <= MAX_TERMS && distinct.iter().all(|t| t.len() <= MAX_ATOMS))
        .then_some(distinct)
}

/// Compiles `expr` (empty: no filter).
pub fn compile(expr: &str) -> Result<FilterProgram, FilterError> {
    let mut prog = FilterProgram::default();
    if expr.trim().is_empty() {
        return Ok(prog);
    }
    let toks = tokenize(expr);
    if toks.len() > MAX_TOKENS {
        return Err(FilterError::Syntax {
            expr: expr.into(),
            reason: format!("longer than {MAX_TOKENS} words"),
        });
    }
    let mut p = Parser { toks, at: 0, expr };
    let e = p.or()?;
    if let Some(extra) = p.peek() {
        return Err(p.err(format!("unexpected `{extra}`")));
    }
    let Some(terms) = dnf(&e, false) else {
        return Err(FilterError::TooComplex(expr.into()));
    };
    prog.enabled = 1;
    prog.len = u32::try_from(terms.len()).unwrap_or(0);
    for (slot, t) in prog.terms.iter_mut().zip(&terms) {
        *slot = Term::default();
        slot.len = u32::try_from(t.len()).unwrap_or(0);
        slot.atoms[..t.len()].copy_from_slice(t);
    }
    Ok(prog)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Fields;

    fn fields(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Fields {
        Fields {
            src_port: sport,
            dst_port: dport,
            src: v4_mapped(src),
            dst: v4_mapped(dst),
        }
    }

    #[test]
    fn common_tcpcopy_and_intercept_filters() {
        let f = compile("tcp and src port 80").unwrap();
        assert!(f.matches(&fields([10, 0, 0, 1], 80, [10, 0, 0, 2], 5555)));
        assert!(!f.matches(&fields([10, 0, 0, 1], 81, [10, 0, 0, 2], 80)));
        let f = compile("dst port 80 and not src net 10.1.0.0/16").unwrap();
        assert!(f.matches(&fields([10, 2, 0, 1], 1234, [10, 0, 0, 2], 80)));
        assert!(!f.matches(&fields([10, 1, 3, 4], 1234, [10, 0, 0, 2], 80)));
        let f = compile("(host 192.0.2.1 || host 192.0.2.2) && port 8080").unwrap();
        assert!(f.matches(&fields([192, 0, 2, 2], 8080, [10, 0, 0, 2], 4000)));
        assert!(f.matches(&fields([10, 9, 9, 9], 4000, [192, 0, 2, 1], 8080)));
        assert!(!f.matches(&fields([192, 0, 2, 3], 8080, [10, 0, 0, 2], 4000)));
        assert!(
            !compile("not tcp")
                .unwrap()
                .matches(&fields([1, 1, 1, 1], 1, [2, 2, 2, 2], 2))
        );
        assert!(
            compile("")
                .unwrap()
                .matches(&fields([1, 1, 1, 1], 1, [2, 2, 2, 2], 2)),
            "no filter"
        );
    }

    #[test]
    fn ipv6_nets() {
        let f = compile("src net 2001:db8::/32").unwrap();
        let mut x = fields([0; 4], 1, [0; 4], 2);
        x.src = [0x2001_0db8_0000_0000, 1];
        assert!(f.matches(&x));
        x.src = [0x2001_0db9_0000_0000, 1];
        assert!(!f.matches(&x));
    }

    /// The expansion is bounded: a long AND of ORs (`port N` is `src port N or dst port N`)
    /// that would double with every term is refused as too complex at once, and an expression
    /// past the word limit (deep parentheses included) is refused before it is parsed.
    #[test]
    fn expressions_too_large_are_refused_not_expanded() {
        let chain: Vec<String> = (1..=22).map(|i| format!("port {i}")).collect();
        let err = compile(&chain.join(" and ")).unwrap_err();
        assert!(matches!(err, FilterError::TooComplex(_)), "{err}");
        let deep = format!("{}tcp{}", "( ".repeat(100_000), " )".repeat(100_000));
        let err = compile(&deep).unwrap_err().to_string();
        assert!(err.contains("longer than 256 words"), "{err}");
        // Repeated alternatives still collapse: nine `tcp or` are one alternative.
        let same = ["port 80"; 9].join(" or ");
        assert_eq!(compile(&same).unwrap().len, 2, "src or dst port 80");
    }

    #[test]
    fn errors_name_the_supported_forms() {
        for bad in [
            "udp",
            "port",
            "src foo 1",
            "port 99999",
            "host 300.1.1.1",
            "net 10.0.0.0/33",
            "(port 1",
            "port 1 port 2",
            "portrange 1-2",
        ] {
            let e = compile(bad).unwrap_err();
            assert!(e.to_string().contains("supported:"), "{bad}: {e}");
        }
        let big = (1..=10)
            .map(|p| format!("port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        assert!(matches!(compile(&big), Err(FilterError::TooComplex(_))));
    }
}
