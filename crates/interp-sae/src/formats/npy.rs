//! A reader of numpy `.npy` arrays and `.npz` archives (as written by `np.save`, `np.savez` and
//! `np.savez_compressed`), converting every array to `f32`.
//!
//! A `.npy` file is the magic `\x93NUMPY`, a version (1.0, 2.0 or 3.0), a header length, a
//! header that is a Python dict literal with exactly the keys `descr`, `fortran_order` and
//! `shape`, and then the raw elements. The header is parsed by a small recursive-descent parser
//! for the few literal forms numpy writes (strings, booleans, integers, tuples, lists); nothing
//! is evaluated. A `.npz` file is a zip archive (stored or deflated) of `.npy` members.
//!
//! Supported dtypes: `f2`, `f4`, `f8`, `i1`–`i8`, `u1`–`u8` and `b1`, little- or big-endian.
//! Object arrays (`|O`, which would need unpickling) are refused with [`Error::Npy`], as are
//! strings, structured, complex and datetime dtypes. `f64` and wide integers are rounded to the
//! nearest `f32`.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Largest deflate expansion ratio (deflate cannot exceed ~1032:1).
const MAX_DEFLATE_RATIO: u64 = 1032;
/// Most dimensions an array may have (numpy's own limit is 64).
const MAX_DIMS: usize = 64;
/// Deepest literal nesting accepted in a header.
const MAX_LITERAL_DEPTH: usize = 16;

/// An array read from a `.npy` file (or an `.npz` member), converted to `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Size of each dimension (empty for a 0-d array).
    pub shape: Vec<usize>,
    /// The elements in row-major (C) order, whatever order the file stored them in.
    pub data: Vec<f32>,
}

impl NpyArray {
    /// Number of elements (the product of the shape; 1 for a 0-d array).
    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// Reads a `.npy` file.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be read; otherwise as [`read_npy_bytes`].
pub fn read_npy_file(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_npy_bytes(&bytes, path)
}

/// Reads the bytes of a `.npy` file. `path` only names the file in errors.
///
/// # Errors
///
/// [`Error::Npy`] if the bytes are not a well-formed `.npy` file of a supported dtype, or hold
/// fewer or more bytes than the header's shape implies.
pub fn read_npy_bytes(bytes: &[u8], path: &Path) -> Result<NpyArray> {
    let err = |reason: String| Error::Npy {
        path: path.to_path_buf(),
        reason,
    };
    let rest = bytes
        .strip_prefix(b"\x93NUMPY")
        .ok_or_else(|| err("no \\x93NUMPY magic (not a .npy file)".to_string()))?;
    let (major, minor) = match rest {
        [major, minor, ..] => (*major, *minor),
        _ => return Err(err("truncated before the version".to_string())),
    };
    let (len_bytes, header_start): (usize, usize) = match (major, minor) {
        (1, 0) => (2, 10),
        (2, 0) | (3, 0) => (4, 12),
        _ => return Err(err(format!("unsupported format version {major}.{minor}"))),
    };
    let len_field = bytes
        .get(8..8 + len_bytes)
        .ok_or_else(|| err("truncated before the header length".to_string()))?;
    let header_len = len_field
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    let header = header_start
        .checked_add(header_len)
        .and_then(|end| bytes.get(header_start..end))
        .ok_or_else(|| err(format!("truncated: header of {header_len} bytes")))?;
    let header: String = if major == 3 {
        std::str::from_utf8(header)
            .map_err(|_| err("header is not UTF-8".to_string()))?
            .to_string()
    } else {
        header.iter().map(|&b| char::from(b)).collect()
    };
    let body = &bytes[header_start + header_len..];
    let h = parse_header(&header).map_err(|reason| err(format!("bad header: {reason}")))?;
    let dtype = Dtype::parse(&h.descr).map_err(err)?;

    if h.shape.len() > MAX_DIMS {
        return Err(err(format!("{} dimensions", h.shape.len())));
    }
    let numel = h
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| err(format!("shape {:?} overflows", h.shape)))?;
    let nbytes = numel
        .checked_mul(dtype.size)
        .ok_or_else(|| err(format!("shape {:?} overflows", h.shape)))?;
    if body.len() != nbytes {
        return Err(err(format!(
            "shape {:?} of {} needs {nbytes} data bytes, the file has {}",
            h.shape,
            h.descr,
            body.len()
        )));
    }
    let values: Vec<f32> = body
        .chunks_exact(dtype.size)
        .map(|c| dtype.convert(c))
        .collect();
    // (With no elements there is nothing to reorder, and the strides could overflow.)
    let data = if h.fortran_order && h.shape.len() > 1 && numel > 0 {
        fortran_to_c(&values, &h.shape)
    } else {
        values
    };
    Ok(NpyArray {
        shape: h.shape,
        data,
    })
}

/// Reads an `.npz` archive: every member, keyed by its name without the `.npy` suffix.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be read; otherwise as [`read_npz_bytes`].
pub fn read_npz_file(path: &Path) -> Result<BTreeMap<String, NpyArray>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_npz_bytes(&bytes, path)
}

/// Reads the bytes of an `.npz` archive: every member, keyed by its name without the `.npy`
/// suffix. `path` only names the file in errors (members as `path/member`).
///
/// # Errors
///
/// [`Error::Npy`] if the bytes are not a readable zip archive, a member is not a well-formed
/// `.npy` array of a supported dtype, or two members share a key.
pub fn read_npz_bytes(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, NpyArray>> {
    let err = |path: &Path, reason: String| Error::Npy {
        path: path.to_path_buf(),
        reason,
    };
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| err(path, format!("not a valid zip archive: {e}")))?;
    let mut out = BTreeMap::new();
    for i in 0..archive.len() {
        let entry = archive
            .by_index(i)
            .map_err(|e| err(path, format!("archive member #{i}: {e}")))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().to_string();
        let member_path: PathBuf = path.join(&name);
        let size = entry.size();
        let cap = match entry.compression() {
            zip::CompressionMethod::Stored => bytes.len() as u64,
            _ => entry
                .compressed_size()
                .saturating_mul(MAX_DEFLATE_RATIO)
                .saturating_add(1024),
        };
        if size > cap || usize::try_from(size).is_err() {
            return Err(err(
                &member_path,
                format!("member claims an impossible size of {size} bytes"),
            ));
        }
        let mut buf = Vec::new();
        entry
            .take(size + 1)
            .read_to_end(&mut buf)
            .map_err(|e| err(&member_path, format!("reading the member: {e}")))?;
        if buf.len() as u64 != size {
            return Err(err(
                &member_path,
                format!("member holds {} bytes, its header says {size}", buf.len()),
            ));
        }
        let array = read_npy_bytes(&buf, &member_path)?;
        let key = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        if out.insert(key.clone(), array).is_some() {
            return Err(err(path, format!("two members named `{key}`")));
        }
    }
    Ok(out)
}

/// Reorders column-major (Fortran) elements into row-major order.
fn fortran_to_c(values: &[f32], shape: &[usize]) -> Vec<f32> {
    let nd = shape.len();
    // Row-major strides.
    let mut strides = vec![1usize; nd];
    for k in (0..nd - 1).rev() {
        strides[k] = strides[k + 1] * shape[k + 1];
    }
    let mut out = vec![0f32; values.len()];
    let mut idx = vec![0usize; nd];
    for &v in values {
        let at: usize = idx.iter().zip(&strides).map(|(&i, &s)| i * s).sum();
        out[at] = v;
        // Column-major order: the first index varies fastest.
        for k in 0..nd {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// dtype
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Float,
    Int,
    Uint,
    Bool,
}

/// An element type from a `descr` string such as `<f4`.
#[derive(Debug, Clone, Copy)]
struct Dtype {
    kind: Kind,
    size: usize,
    big_endian: bool,
}

impl Dtype {
    fn parse(descr: &str) -> std::result::Result<Dtype, String> {
        let (big_endian, code) = match descr.as_bytes().first() {
            Some(b'<' | b'|' | b'=') => (false, &descr[1..]),
            Some(b'>') => (true, &descr[1..]),
            _ => (false, descr),
        };
        let (kind, size) = match code {
            "f2" | "e" => (Kind::Float, 2),
            "f4" | "f" => (Kind::Float, 4),
            "f8" | "d" => (Kind::Float, 8),
            "i1" | "b" => (Kind::Int, 1),
            "i2" | "h" => (Kind::Int, 2),
            "i4" | "i" => (Kind::Int, 4),
            "i8" | "q" => (Kind::Int, 8),
            "u1" | "B" => (Kind::Uint, 1),
            "u2" | "H" => (Kind::Uint, 2),
            "u4" | "I" => (Kind::Uint, 4),
            "u8" | "Q" => (Kind::Uint, 8),
            "b1" | "?" => (Kind::Bool, 1),
            "O" | "O8" | "O4" => {
                return Err(format!(
                    "object dtype {descr:?} (pickled Python objects) is not supported; \
                     nothing was unpickled"
                ))
            }
            _ => return Err(format!("unsupported dtype {descr:?}")),
        };
        Ok(Dtype {
            kind,
            size,
            big_endian,
        })
    }

    /// One element (`self.size` bytes) as `f32`.
    fn convert(self, c: &[u8]) -> f32 {
        let mut w = [0u8; 8];
        w[..self.size].copy_from_slice(c);
        if self.big_endian {
            w[..self.size].reverse();
        }
        match (self.kind, self.size) {
            (Kind::Float, 2) => half::f16::from_le_bytes([w[0], w[1]]).to_f32(),
            (Kind::Float, 4) => f32::from_le_bytes([w[0], w[1], w[2], w[3]]),
            (Kind::Float, _) => f64::from_le_bytes(w) as f32,
            (Kind::Bool, _) => f32::from(u8::from(w[0] != 0)),
            (Kind::Uint, _) => u64::from_le_bytes(w) as f32,
            (Kind::Int, n) => {
                // Sign-extend from n bytes.
                let shift = 64 - 8 * n as u32;
                ((i64::from_le_bytes(w) << shift) >> shift) as f32
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// header
// ------------------------------------------------------------------------------------------------

/// The three header fields.
#[derive(Debug)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A Python literal as it may appear in a header.
#[derive(Debug)]
enum Lit {
    Str(String),
    Bool(bool),
    None,
    Int(u64),
    Seq(Vec<Lit>),
}

fn parse_header(text: &str) -> std::result::Result<Header, String> {
    let mut p = LitParser {
        s: text.as_bytes(),
        pos: 0,
    };
    p.ws();
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = match p.value(0)? {
            Lit::Str(k) => k,
            other => return Err(format!("dict key {other:?} is not a string")),
        };
        p.ws();
        p.expect(b':')?;
        let value = p.value(0)?;
        let slot_taken = match key.as_str() {
            "descr" => descr.replace(value).is_some(),
            "fortran_order" => fortran.replace(value).is_some(),
            "shape" => shape.replace(value).is_some(),
            _ => return Err(format!("unexpected key {key:?}")),
        };
        if slot_taken {
            return Err(format!("duplicate key {key:?}"));
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}')?;
            break;
        }
    }
    p.ws();
    if p.pos != p.s.len() {
        return Err("unexpected text after the dict".to_string());
    }
    let descr = match descr {
        Some(Lit::Str(d)) => d,
        Some(Lit::Seq(_)) => return Err("structured dtypes are not supported".to_string()),
        Some(other) => return Err(format!("descr {other:?} is not a string")),
        None => return Err("no 'descr' key".to_string()),
    };
    let fortran_order = match fortran {
        Some(Lit::Bool(b)) => b,
        Some(other) => return Err(format!("fortran_order {other:?} is not a bool")),
        None => return Err("no 'fortran_order' key".to_string()),
    };
    let shape = match shape {
        Some(Lit::Seq(items)) => items
            .into_iter()
            .map(|x| match x {
                Lit::Int(i) => usize::try_from(i).map_err(|_| format!("dimension {i} too large")),
                other => Err(format!("shape entry {other:?} is not an integer")),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?,
        Some(other) => return Err(format!("shape {other:?} is not a tuple")),
        None => return Err("no 'shape' key".to_string()),
    };
    Ok(Header {
        descr,
        fortran_order,
        shape,
    })
}

struct LitParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl LitParser<'_> {
    fn ws(&mut self) {
        while self
            .s
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "expected {:?} at header byte {}",
                char::from(c),
                self.pos
            ))
        }
    }

    fn value(&mut self, depth: usize) -> std::result::Result<Lit, String> {
        if depth > MAX_LITERAL_DEPTH {
            return Err("literal nested too deeply".to_string());
        }
        self.ws();
        let Some(&c) = self.s.get(self.pos) else {
            return Err("header ends inside the dict".to_string());
        };
        match c {
            b'\'' | b'"' => self.string(c),
            b'(' | b'[' => {
                self.pos += 1;
                let close = if c == b'(' { b')' } else { b']' };
                let mut items = Vec::new();
                loop {
                    self.ws();
                    if self.eat(close) {
                        break;
                    }
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    if !self.eat(b',') {
                        self.ws();
                        self.expect(close)?;
                        break;
                    }
                }
                Ok(Lit::Seq(items))
            }
            b'0'..=b'9' => {
                let start = self.pos;
                while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
                    self.pos += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
                let v = digits
                    .parse::<u64>()
                    .map_err(|_| format!("integer {digits} too large"))?;
                // Python 2 long suffix.
                let _ = self.eat(b'L') || self.eat(b'l');
                Ok(Lit::Int(v))
            }
            _ => {
                for (word, lit) in [
                    ("True", Lit::Bool(true)),
                    ("False", Lit::Bool(false)),
                    ("None", Lit::None),
                ] {
                    if self.s[self.pos..].starts_with(word.as_bytes()) {
                        self.pos += word.len();
                        return Ok(lit);
                    }
                }
                Err(format!(
                    "unexpected {:?} at header byte {}",
                    char::from(c),
                    self.pos
                ))
            }
        }
    }

    fn string(&mut self, quote: u8) -> std::result::Result<Lit, String> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.pos) else {
                return Err("unterminated string".to_string());
            };
            self.pos += 1;
            match c {
                _ if c == quote => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.pos) else {
                        return Err("unterminated string".to_string());
                    };
                    self.pos += 1;
                    match e {
                        b'\\' | b'\'' | b'"' => out.push(e),
                        _ => return Err(format!("unsupported escape \\{}", char::from(e))),
                    }
                }
                b'\n' => return Err("newline inside a string".to_string()),
                _ => out.push(c),
            }
        }
        String::from_utf8(out)
            .map(Lit::Str)
            .map_err(|_| "string is not UTF-8".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn headers_parse() {
        let h = parse_header("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }    \n")
            .unwrap();
        assert_eq!(
            (h.descr.as_str(), h.fortran_order, h.shape),
            ("<f4", false, vec![3, 4])
        );
        let h = parse_header("{\"shape\": (5L,), \"fortran_order\": True, \"descr\": \">i2\"}")
            .unwrap();
        assert_eq!(
            (h.descr.as_str(), h.fortran_order, h.shape),
            (">i2", true, vec![5])
        );
        assert_eq!(
            parse_header("{'descr':'<f8','fortran_order':False,'shape':()}")
                .unwrap()
                .shape,
            Vec::<usize>::new()
        );
        for bad in [
            "",
            "{",
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}",
            "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3,)}",
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,)}",
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (3,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-3,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)} junk",
            &format!("{{'descr': {}}}", "(".repeat(100_000)),
        ] {
            assert!(parse_header(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn arrays_convert() {
        let p = Path::new("x.npy");
        let a = read_npy_bytes(
            &npy(
                "{'descr': '>i2', 'fortran_order': False, 'shape': (2,)}",
                &[0xff, 0xfe, 1, 0],
            ),
            p,
        )
        .unwrap();
        assert_eq!(a.data, vec![-2.0, 256.0]);
        let a = read_npy_bytes(
            &npy(
                "{'descr': '<u1', 'fortran_order': True, 'shape': (2, 3)}",
                &[1, 4, 2, 5, 3, 6],
            ),
            p,
        )
        .unwrap();
        assert_eq!(a.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let huge = npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296)}", &[]);
        assert!(read_npy_bytes(&huge, p).is_err());
        let empty = npy(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (0, 4294967296, 4294967296)}",
            &[],
        );
        assert_eq!(read_npy_bytes(&empty, p).unwrap().data, Vec::<f32>::new());
        let short = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}",
            &[0; 11],
        );
        assert!(read_npy_bytes(&short, p).is_err());
        let obj = npy(
            "{'descr': '|O', 'fortran_order': False, 'shape': (1,)}",
            &[0; 8],
        );
        assert!(read_npy_bytes(&obj, p)
            .unwrap_err()
            .to_string()
            .contains("object"));
    }
}
