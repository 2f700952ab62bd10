//! A safe reader of PyTorch `.pt` files (the zip format `torch.save` writes since torch 1.6).
//!
//! A `.pt` file is a zip archive with one top-level folder holding `data.pkl` (a Python pickle
//! describing the saved object), `data/<key>` (the raw little-endian bytes of each tensor
//! storage), `byteorder` and a few bookkeeping files. Python's `torch.load` *executes* the pickle,
//! which lets a malicious checkpoint run arbitrary code. This reader never executes anything:
//! it interprets the pickle opcodes on a small stack machine in which the only callables are an
//! explicit allow-list of globals whose effect is emulated in Rust (rebuilding a tensor from a
//! storage, building an `OrderedDict`, ...). Any other global is refused with
//! [`Error::ForbiddenGlobal`] at the opcode that names it, before anything could call it.
//!
//! # Allowed globals
//!
//! | global | emulated as |
//! |---|---|
//! | `torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_tensor_v3` | a [`TorchTensor`] view of a storage (offset, size, stride applied) |
//! | `torch._utils._rebuild_parameter`, `torch._utils._rebuild_parameter_with_state` | the wrapped tensor |
//! | `collections.OrderedDict` | a [`TorchValue::Dict`]; attribute state set by `BUILD` (`_metadata`) is ignored |
//! | `torch.FloatStorage`, `torch.BFloat16Storage`, `torch.LongStorage`, ... | the storage class named by a persistent id; gives the dtype |
//! | `torch.storage.UntypedStorage` | a byte storage (the dtype then comes from `_rebuild_tensor_v3`) |
//! | `torch.float32`, `torch.bfloat16`, ... | a dtype; a bare dtype value reads as [`TorchValue::Str`] (`"torch.float32"`) |
//! | `torch.Size` | a [`TorchValue::Tuple`] of ints |
//! | `torch.device` | a [`TorchValue::Str`] such as `"cpu"` or `"cuda:1"` |
//! | `_codecs.encode` | [`TorchValue::Bytes`] (how protocol-2 pickles spell `bytes`) |
//!
//! Storage classes and dtypes outside [`TorchDtype`] (complex, quantised, float8, uint16, ...)
//! are recognised but give [`Error::Unsupported`] when a tensor uses them.
//!
//! # Resource limits
//!
//! Every length is checked against the bytes actually present before anything is allocated, and
//! nothing recurses on the input except the final conversion, which stops at 128 levels of
//! nesting (self-referencing containers hit this limit too). Per file:
//!
//! - storage bytes read from the archive, and separately tensor bytes materialised, may each be
//!   at most four times the input size plus 64 MiB (views are copied out of their storage, so
//!   a broadcast view with zero strides counts at its full size);
//! - copying work (values produced by emulated calls and by the final conversion, plus the
//!   bytes of strings copied or hashed) may be at most eight units per pickle byte plus 2^20,
//!   which bounds what many memo references to one large value can amplify to.
//!
//! Exceeding a limit is an [`Error::Pickle`], never a panic or an unbounded allocation.
//!
//! # Not supported
//!
//! Legacy (pre-1.6, non-zip) files, big-endian archives, TorchScript archives (their `__torch__`
//! globals are refused), sparse/quantised/nested tensors, and pickle protocols 0 and 1 beyond the
//! few text opcodes (`PUT`, `GET`) some writers still emit.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Deepest nesting of containers in the returned value.
const MAX_DEPTH: usize = 128;
/// Most dimensions a tensor may have.
const MAX_DIMS: usize = 64;
/// Largest deflate expansion ratio (deflate cannot exceed ~1032:1).
const MAX_DEFLATE_RATIO: u64 = 1032;

// ------------------------------------------------------------------------------------------------
// Public types
// ------------------------------------------------------------------------------------------------

/// A Python value read from a torch pickle.
///
/// Python objects map as: `None`, `bool`, `int` (beyond `i64` becomes [`TorchValue::Float`],
/// rounded to nearest), `float`, `str`, `bytes`/`bytearray`, tensors and parameters, `list`
/// (and `set`, in pickle order), `tuple` (and `torch.Size`, `frozenset`), `dict` and
/// `OrderedDict` (insertion order, later duplicates overwrite in place). `torch.device` and
/// dtype objects read as strings.
#[derive(Debug, Clone, PartialEq)]
pub enum TorchValue {
    /// Python `None`.
    None,
    /// A `bool`.
    Bool(bool),
    /// An `int` that fits in `i64`.
    Int(i64),
    /// A `float` (or an `int` too large for `i64`, rounded to the nearest `f64`).
    Float(f64),
    /// A `str` (also a `torch.device` or `torch.dtype`, spelled as Python prints them).
    Str(String),
    /// A `bytes` or `bytearray`.
    Bytes(Vec<u8>),
    /// A tensor or `nn.Parameter`.
    Tensor(TorchTensor),
    /// A `list` (or `set`).
    List(Vec<TorchValue>),
    /// A `tuple` (or `torch.Size`, `frozenset`).
    Tuple(Vec<TorchValue>),
    /// A `dict` or `OrderedDict`: key–value pairs in insertion order, keys unique.
    Dict(Vec<(TorchValue, TorchValue)>),
}

impl TorchValue {
    /// The key–value pairs if this is a dict.
    pub fn as_dict(&self) -> Option<&[(TorchValue, TorchValue)]> {
        match self {
            TorchValue::Dict(items) => Some(items),
            _ => None,
        }
    }

    /// The value under string key `key` if this is a dict holding it.
    pub fn get(&self, key: &str) -> Option<&TorchValue> {
        self.as_dict()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The string if this is a [`TorchValue::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            TorchValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer if this is a [`TorchValue::Int`].
    pub fn as_int(&self) -> Option<i64> {
        match self {
            TorchValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number if this is a [`TorchValue::Float`] or a [`TorchValue::Int`].
    pub fn as_float(&self) -> Option<f64> {
        match self {
            TorchValue::Float(f) => Some(*f),
            TorchValue::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The boolean if this is a [`TorchValue::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            TorchValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The tensor if this is a [`TorchValue::Tensor`].
    pub fn as_tensor(&self) -> Option<&TorchTensor> {
        match self {
            TorchValue::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// The items if this is a [`TorchValue::List`] or a [`TorchValue::Tuple`].
    pub fn as_list(&self) -> Option<&[TorchValue]> {
        match self {
            TorchValue::List(items) | TorchValue::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// Whether this is [`TorchValue::None`].
    pub fn is_none(&self) -> bool {
        matches!(self, TorchValue::None)
    }

    /// Every tensor reachable from this value, named by its path of dict keys and list indices
    /// joined with `.` (so a nested state dict `{"enc": {"weight": t}}` gives `"enc.weight"`).
    ///
    /// Dict keys that are neither strings nor integers are skipped along with their values.
    pub fn named_tensors(&self) -> Vec<(String, &TorchTensor)> {
        let mut out = Vec::new();
        collect_tensors(self, String::new(), &mut out);
        out
    }
}

fn collect_tensors<'a>(v: &'a TorchValue, name: String, out: &mut Vec<(String, &'a TorchTensor)>) {
    let join = |part: &str| {
        if name.is_empty() {
            part.to_string()
        } else {
            format!("{name}.{part}")
        }
    };
    match v {
        TorchValue::Tensor(t) => out.push((name, t)),
        TorchValue::Dict(items) => {
            for (k, v) in items {
                let part = match k {
                    TorchValue::Str(s) => s.clone(),
                    TorchValue::Int(i) => i.to_string(),
                    _ => continue,
                };
                collect_tensors(v, join(&part), out);
            }
        }
        TorchValue::List(items) | TorchValue::Tuple(items) => {
            for (i, v) in items.iter().enumerate() {
                collect_tensors(v, join(&i.to_string()), out);
            }
        }
        _ => {}
    }
}

/// The element type of a [`TorchTensor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TorchDtype {
    /// `torch.float32`.
    F32,
    /// `torch.float64`.
    F64,
    /// `torch.float16`.
    F16,
    /// `torch.bfloat16`.
    BF16,
    /// `torch.int64`.
    I64,
    /// `torch.int32`.
    I32,
    /// `torch.int16`.
    I16,
    /// `torch.int8`.
    I8,
    /// `torch.uint8`.
    U8,
    /// `torch.bool` (one byte per element, nonzero is true).
    Bool,
}

impl TorchDtype {
    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            TorchDtype::F64 | TorchDtype::I64 => 8,
            TorchDtype::F32 | TorchDtype::I32 => 4,
            TorchDtype::F16 | TorchDtype::BF16 | TorchDtype::I16 => 2,
            TorchDtype::I8 | TorchDtype::U8 | TorchDtype::Bool => 1,
        }
    }

    /// Whether this is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            TorchDtype::F32 | TorchDtype::F64 | TorchDtype::F16 | TorchDtype::BF16
        )
    }

    /// The name torch prints, e.g. `"torch.bfloat16"`.
    pub fn torch_name(self) -> &'static str {
        match self {
            TorchDtype::F32 => "torch.float32",
            TorchDtype::F64 => "torch.float64",
            TorchDtype::F16 => "torch.float16",
            TorchDtype::BF16 => "torch.bfloat16",
            TorchDtype::I64 => "torch.int64",
            TorchDtype::I32 => "torch.int32",
            TorchDtype::I16 => "torch.int16",
            TorchDtype::I8 => "torch.int8",
            TorchDtype::U8 => "torch.uint8",
            TorchDtype::Bool => "torch.bool",
        }
    }
}

/// A dense tensor read from a torch file.
///
/// The elements are held in logical row-major order (the saved view's offset and strides are
/// already applied), little-endian, in the saved dtype; convert with [`TorchTensor::to_f32`],
/// [`TorchTensor::to_f64`] or [`TorchTensor::to_i64`]. Cloning is cheap: clones share the data.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchTensor {
    /// Size of each dimension (empty for a 0-d tensor).
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: TorchDtype,
    /// `numel * dtype.size_in_bytes()` bytes, little-endian, row-major.
    data: Arc<Vec<u8>>,
}

impl TorchTensor {
    /// A tensor from little-endian row-major bytes; `None` unless `data.len()` equals the
    /// product of `shape` times the element size.
    pub fn from_le_bytes(shape: Vec<usize>, dtype: TorchDtype, data: Vec<u8>) -> Option<Self> {
        let numel = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
        (numel.checked_mul(dtype.size_in_bytes())? == data.len()).then(|| TorchTensor {
            shape,
            dtype,
            data: Arc::new(data),
        })
    }

    /// Number of elements (the product of the shape; 1 for a 0-d tensor).
    pub fn numel(&self) -> usize {
        self.data.len() / self.dtype.size_in_bytes()
    }

    /// The raw elements: little-endian, row-major, [`TorchTensor::dtype`]-typed.
    pub fn raw_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The elements converted to `f32` (exact for f16/bf16/f32, rounded for f64 and wide
    /// integers; bools are 0.0 or 1.0).
    pub fn to_f32(&self) -> Vec<f32> {
        use interp_core::io::{floats_from_le_bytes, Dtype};
        let float = match self.dtype {
            TorchDtype::F32 => Dtype::F32,
            TorchDtype::F16 => Dtype::F16,
            TorchDtype::BF16 => Dtype::BF16,
            TorchDtype::F64 => Dtype::F64,
            _ => {
                return self
                    .to_i64()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|x| x as f32)
                    .collect()
            }
        };
        floats_from_le_bytes(&self.data, float).expect("float dtypes decode")
    }

    /// The elements converted to `f64` (exact except for integers beyond 2^53).
    pub fn to_f64(&self) -> Vec<f64> {
        match self.dtype {
            TorchDtype::F64 => self
                .data
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
            TorchDtype::F32 | TorchDtype::F16 | TorchDtype::BF16 => {
                self.to_f32().into_iter().map(f64::from).collect()
            }
            _ => self
                .to_i64()
                .unwrap_or_default()
                .into_iter()
                .map(|x| x as f64)
                .collect(),
        }
    }

    /// The elements as `i64` for integer and bool dtypes (bools are 0 or 1); `None` for
    /// floating-point dtypes.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        let d = &self.data[..];
        Some(match self.dtype {
            TorchDtype::I64 => d
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
            TorchDtype::I32 => d
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            TorchDtype::I16 => d
                .chunks_exact(2)
                .map(|c| i64::from(i16::from_le_bytes([c[0], c[1]])))
                .collect(),
            TorchDtype::I8 => d.iter().map(|&b| i64::from(b as i8)).collect(),
            TorchDtype::U8 => d.iter().map(|&b| i64::from(b)).collect(),
            TorchDtype::Bool => d.iter().map(|&b| i64::from(b != 0)).collect(),
            TorchDtype::F32 | TorchDtype::F64 | TorchDtype::F16 | TorchDtype::BF16 => return None,
        })
    }
}

// ------------------------------------------------------------------------------------------------
// Entry points
// ------------------------------------------------------------------------------------------------

/// Reads a `.pt` file written by `torch.save` (zip format) without executing anything.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be read; otherwise as [`read_torch_bytes`].
pub fn read_torch_file(path: &Path) -> Result<TorchValue> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_torch_bytes(&bytes, path)
}

/// Reads the bytes of a `.pt` file written by `torch.save` (zip format) without executing
/// anything. `path` only names the file in errors.
///
/// # Errors
///
/// - [`Error::ForbiddenGlobal`] if the pickle names a global outside the allow-list (see the
///   [module docs](self)); nothing is executed either way.
/// - [`Error::Unsupported`] for legacy (pre-1.6, non-zip) files, big-endian archives and
///   tensors of dtypes outside [`TorchDtype`].
/// - [`Error::Pickle`] for anything malformed: a bad zip, a truncated or inconsistent pickle,
///   a missing storage, a view out of its storage's bounds, or a resource limit exceeded.
pub fn read_torch_bytes(bytes: &[u8], path: &Path) -> Result<TorchValue> {
    if !bytes.starts_with(b"PK\x03\x04") && !bytes.starts_with(b"PK\x05\x06") {
        return Err(not_a_zip(bytes, path));
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| pickle_err(path, format!("not a valid zip archive: {e}")))?;
    let prefix = find_prefix(&archive, path)?;

    let byteorder = format!("{prefix}byteorder");
    if archive.index_for_name(&byteorder).is_some() {
        let order = read_entry(&mut archive, &byteorder, path, bytes.len())?;
        match order.trim_ascii() {
            b"little" => {}
            b"big" => {
                return Err(Error::Unsupported {
                    what: format!(
                        "{}: big-endian torch archive (byteorder = big)",
                        path.display()
                    ),
                })
            }
            other => {
                return Err(pickle_err(
                    path,
                    format!("unknown byteorder {:?}", String::from_utf8_lossy(other)),
                ))
            }
        }
    }

    let pickle = read_entry(
        &mut archive,
        &format!("{prefix}data.pkl"),
        path,
        bytes.len(),
    )?;
    let byte_budget = bytes.len().saturating_mul(4).saturating_add(64 << 20);
    let mut storages = ZipStorages {
        archive,
        prefix,
        cache: HashMap::new(),
        path,
        input_len: bytes.len(),
        budget: byte_budget,
    };
    let mut vm = Vm::new(&pickle, path, &mut storages, byte_budget);
    let value = vm.run()?;
    vm.to_value(&value)
}

/// The error for bytes that are not a zip archive: a legacy torch file or something else.
fn not_a_zip(bytes: &[u8], path: &Path) -> Error {
    let legacy = |kind: &str| Error::Unsupported {
        what: format!(
            "{}: legacy {kind} torch serialization (torch < 1.6); load it in Python and re-save \
             with torch.save(obj, path) (zip format), or convert it to safetensors",
            path.display()
        ),
    };
    if bytes.first() == Some(&0x80) {
        legacy("pickle-stream")
    } else if bytes.get(257..262) == Some(b"ustar") {
        legacy("tar")
    } else {
        pickle_err(
            path,
            "not a torch zip archive (no zip signature)".to_string(),
        )
    }
}

fn pickle_err(path: &Path, reason: String) -> Error {
    Error::Pickle {
        path: path.to_path_buf(),
        reason,
    }
}

/// The archive's top-level folder (with its trailing `/`) holding `data.pkl`.
fn find_prefix(archive: &zip::ZipArchive<Cursor<&[u8]>>, path: &Path) -> Result<String> {
    let mut found: Option<String> = None;
    for name in archive.file_names() {
        let Some(prefix) = name.strip_suffix("data.pkl") else {
            continue;
        };
        let top_level = prefix.is_empty()
            || prefix
                .strip_suffix('/')
                .is_some_and(|dir| !dir.is_empty() && !dir.contains('/'));
        if !top_level {
            continue;
        }
        if found.is_some() {
            return Err(pickle_err(
                path,
                "several data.pkl records in the archive".to_string(),
            ));
        }
        found = Some(prefix.to_string());
    }
    found.ok_or_else(|| {
        pickle_err(
            path,
            "no data.pkl in the archive (not written by torch.save?)".to_string(),
        )
    })
}

/// Reads one archive member, refusing sizes the member cannot really have.
fn read_entry(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    path: &Path,
    input_len: usize,
) -> Result<Vec<u8>> {
    let entry = archive
        .by_name(name)
        .map_err(|e| pickle_err(path, format!("archive member `{name}`: {e}")))?;
    let size = entry.size();
    let cap = match entry.compression() {
        zip::CompressionMethod::Stored => input_len as u64,
        _ => entry
            .compressed_size()
            .saturating_mul(MAX_DEFLATE_RATIO)
            .saturating_add(1024),
    };
    if size > cap || usize::try_from(size).is_err() {
        return Err(pickle_err(
            path,
            format!("archive member `{name}` claims an impossible size of {size} bytes"),
        ));
    }
    let mut buf = Vec::new();
    entry
        .take(size + 1)
        .read_to_end(&mut buf)
        .map_err(|e| pickle_err(path, format!("archive member `{name}`: {e}")))?;
    if buf.len() as u64 != size {
        return Err(pickle_err(
            path,
            format!(
                "archive member `{name}` holds {} bytes, its header says {size}",
                buf.len()
            ),
        ));
    }
    Ok(buf)
}

/// Where the pickle's persistent ids find storage bytes.
trait StorageSource {
    /// The bytes of storage `key`.
    fn storage(&mut self, key: &str) -> Result<Rc<Vec<u8>>>;
}

struct ZipStorages<'a> {
    archive: zip::ZipArchive<Cursor<&'a [u8]>>,
    prefix: String,
    cache: HashMap<String, Rc<Vec<u8>>>,
    path: &'a Path,
    input_len: usize,
    /// Storage bytes that may still be read (bounds what deflated members can expand to).
    budget: usize,
}

impl StorageSource for ZipStorages<'_> {
    fn storage(&mut self, key: &str) -> Result<Rc<Vec<u8>>> {
        if let Some(data) = self.cache.get(key) {
            return Ok(Rc::clone(data));
        }
        let name = format!("{}data/{key}", self.prefix);
        if self.archive.index_for_name(&name).is_none() {
            return Err(pickle_err(
                self.path,
                format!("storage `{key}` is referenced by the pickle but `{name}` is missing"),
            ));
        }
        let declared = self
            .archive
            .by_name(&name)
            .map(|e| e.size())
            .map_err(|e| pickle_err(self.path, format!("archive member `{name}`: {e}")))?;
        if declared > self.budget as u64 {
            return Err(pickle_err(
                self.path,
                format!(
                    "storages add up to more than the {} byte limit",
                    self.budget
                ),
            ));
        }
        let data = Rc::new(read_entry(
            &mut self.archive,
            &name,
            self.path,
            self.input_len,
        )?);
        self.budget -= data.len();
        self.cache.insert(key.to_string(), Rc::clone(&data));
        Ok(data)
    }
}

// ------------------------------------------------------------------------------------------------
// Allow-listed globals
// ------------------------------------------------------------------------------------------------

/// What an allow-listed global stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    RebuildTensorV2,
    RebuildTensorV3,
    RebuildParameter,
    RebuildParameterWithState,
    OrderedDict,
    /// A typed storage class; `None` for one whose dtype this reader does not support.
    Storage(Option<TorchDtype>),
    UntypedStorage,
    /// A dtype object; `None` for one this reader does not support.
    Dtype(Option<TorchDtype>),
    Size,
    Device,
    CodecsEncode,
}

/// The allow-list: (module, name, meaning).
const ALLOWED: &[(&str, &str, Kind)] = &[
    ("torch._utils", "_rebuild_tensor_v2", Kind::RebuildTensorV2),
    ("torch._utils", "_rebuild_tensor_v3", Kind::RebuildTensorV3),
    ("torch._utils", "_rebuild_parameter", Kind::RebuildParameter),
    (
        "torch._utils",
        "_rebuild_parameter_with_state",
        Kind::RebuildParameterWithState,
    ),
    ("collections", "OrderedDict", Kind::OrderedDict),
    (
        "torch",
        "FloatStorage",
        Kind::Storage(Some(TorchDtype::F32)),
    ),
    (
        "torch",
        "DoubleStorage",
        Kind::Storage(Some(TorchDtype::F64)),
    ),
    ("torch", "HalfStorage", Kind::Storage(Some(TorchDtype::F16))),
    (
        "torch",
        "BFloat16Storage",
        Kind::Storage(Some(TorchDtype::BF16)),
    ),
    ("torch", "LongStorage", Kind::Storage(Some(TorchDtype::I64))),
    ("torch", "IntStorage", Kind::Storage(Some(TorchDtype::I32))),
    (
        "torch",
        "ShortStorage",
        Kind::Storage(Some(TorchDtype::I16)),
    ),
    ("torch", "CharStorage", Kind::Storage(Some(TorchDtype::I8))),
    ("torch", "ByteStorage", Kind::Storage(Some(TorchDtype::U8))),
    (
        "torch",
        "BoolStorage",
        Kind::Storage(Some(TorchDtype::Bool)),
    ),
    ("torch", "ComplexFloatStorage", Kind::Storage(None)),
    ("torch", "ComplexDoubleStorage", Kind::Storage(None)),
    ("torch", "QInt8Storage", Kind::Storage(None)),
    ("torch", "QUInt8Storage", Kind::Storage(None)),
    ("torch", "QInt32Storage", Kind::Storage(None)),
    ("torch", "QUInt4x2Storage", Kind::Storage(None)),
    ("torch", "QUInt2x4Storage", Kind::Storage(None)),
    ("torch.storage", "UntypedStorage", Kind::UntypedStorage),
    ("torch", "float32", Kind::Dtype(Some(TorchDtype::F32))),
    ("torch", "float64", Kind::Dtype(Some(TorchDtype::F64))),
    ("torch", "float16", Kind::Dtype(Some(TorchDtype::F16))),
    ("torch", "bfloat16", Kind::Dtype(Some(TorchDtype::BF16))),
    ("torch", "int64", Kind::Dtype(Some(TorchDtype::I64))),
    ("torch", "int32", Kind::Dtype(Some(TorchDtype::I32))),
    ("torch", "int16", Kind::Dtype(Some(TorchDtype::I16))),
    ("torch", "int8", Kind::Dtype(Some(TorchDtype::I8))),
    ("torch", "uint8", Kind::Dtype(Some(TorchDtype::U8))),
    ("torch", "bool", Kind::Dtype(Some(TorchDtype::Bool))),
    ("torch", "uint16", Kind::Dtype(None)),
    ("torch", "uint32", Kind::Dtype(None)),
    ("torch", "uint64", Kind::Dtype(None)),
    ("torch", "complex32", Kind::Dtype(None)),
    ("torch", "complex64", Kind::Dtype(None)),
    ("torch", "complex128", Kind::Dtype(None)),
    ("torch", "float8_e4m3fn", Kind::Dtype(None)),
    ("torch", "float8_e4m3fnuz", Kind::Dtype(None)),
    ("torch", "float8_e5m2", Kind::Dtype(None)),
    ("torch", "float8_e5m2fnuz", Kind::Dtype(None)),
    ("torch", "float8_e8m0fnu", Kind::Dtype(None)),
    ("torch", "qint8", Kind::Dtype(None)),
    ("torch", "quint8", Kind::Dtype(None)),
    ("torch", "qint32", Kind::Dtype(None)),
    ("torch", "Size", Kind::Size),
    ("torch", "device", Kind::Device),
    ("_codecs", "encode", Kind::CodecsEncode),
];

/// An allow-listed global: an index into [`ALLOWED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Global(usize);

impl Global {
    fn resolve(module: &str, name: &str) -> Option<Global> {
        ALLOWED
            .iter()
            .position(|&(m, n, _)| m == module && n == name)
            .map(Global)
    }

    fn kind(self) -> Kind {
        ALLOWED[self.0].2
    }

    fn dotted(self) -> String {
        let (m, n, _) = ALLOWED[self.0];
        format!("{m}.{n}")
    }
}

// ------------------------------------------------------------------------------------------------
// Pickle machine values
// ------------------------------------------------------------------------------------------------

type Shared<T> = Rc<RefCell<T>>;

/// A value on the pickle machine's stack. Containers are shared (like Python references) so
/// that memo references see later mutation, as in Python.
#[derive(Clone)]
enum V {
    None,
    Bool(bool),
    Int(i64),
    /// An int outside `i64`, rounded to the nearest `f64`.
    BigInt(f64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    List(Shared<Vec<V>>),
    Tuple(Shared<Vec<V>>),
    Dict(Shared<Dict>),
    Global(Global),
    Storage(Rc<Storage>),
    Tensor(TorchTensor),
}

impl V {
    fn type_name(&self) -> &'static str {
        match self {
            V::None => "None",
            V::Bool(_) => "bool",
            V::Int(_) | V::BigInt(_) => "int",
            V::Float(_) => "float",
            V::Str(_) => "str",
            V::Bytes(_) => "bytes",
            V::List(_) => "list",
            V::Tuple(_) => "tuple",
            V::Dict(_) => "dict",
            V::Global(_) => "global",
            V::Storage(_) => "storage",
            V::Tensor(_) => "tensor",
        }
    }
}

/// A tensor storage named by a persistent id.
struct Storage {
    /// `None` for an untyped (byte) storage.
    dtype: Option<TorchDtype>,
    key: String,
    data: Rc<Vec<u8>>,
}

/// A Python dict: pairs in insertion order plus an index of their keys.
#[derive(Default)]
struct Dict {
    items: Vec<(V, V)>,
    index: HashMap<Key, usize>,
}

/// A hashable dict key. Equal Python keys map to equal `Key`s (`True == 1 == 1.0`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    None,
    Int(i64),
    Float(u64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Vec<Key>),
    Global(Global),
}

/// Every container the machine created, so they can all be emptied at the end (which breaks
/// reference cycles and keeps drops shallow however deeply values nest).
enum Container {
    Seq(Shared<Vec<V>>),
    Dict(Shared<Dict>),
}

/// Decodes a little-endian two's-complement integer (`LONG1`/`LONG4`).
fn decode_long(b: &[u8]) -> V {
    let Some(&last) = b.last() else {
        return V::Int(0);
    };
    let negative = last & 0x80 != 0;
    let ext = if negative { 0xff } else { 0 };
    if b.len() <= 8 || b[8..].iter().all(|&x| x == ext) && (b[7] & 0x80 != 0) == negative {
        let mut w = [ext; 8];
        let n = b.len().min(8);
        w[..n].copy_from_slice(&b[..n]);
        return V::Int(i64::from_le_bytes(w));
    }
    // Magnitude, big-endian, leading zeros stripped.
    let mut mag: Vec<u8> = b.iter().rev().copied().collect();
    if negative {
        for x in mag.iter_mut() {
            *x = !*x;
        }
        for x in mag.iter_mut().rev() {
            let (sum, carry) = x.overflowing_add(1);
            *x = sum;
            if !carry {
                break;
            }
        }
    }
    let start = mag.iter().position(|&x| x != 0).unwrap_or(mag.len());
    let mag = &mag[start..];
    // Round correctly: keep the top 16 bytes and fold the rest into a sticky bit.
    let head = mag.len().min(16);
    let mut top = [0u8; 16];
    top[16 - head..].copy_from_slice(&mag[..head]);
    let mut hi = u128::from_be_bytes(top);
    if mag[head..].iter().any(|&x| x != 0) {
        hi |= 1;
    }
    let shift = (mag.len() - head) * 8;
    let mut f = hi as f64;
    // Scale by 2^shift in steps that stay exact (powers of two).
    let mut left = shift;
    while left > 0 && f.is_finite() {
        let step = left.min(512);
        f *= 2f64.powi(step as i32);
        left -= step;
    }
    V::BigInt(if negative { -f } else { f })
}

// ------------------------------------------------------------------------------------------------
// The pickle machine
// ------------------------------------------------------------------------------------------------

struct Vm<'a, S: StorageSource> {
    data: &'a [u8],
    pos: usize,
    path: &'a Path,
    stack: Vec<V>,
    metastack: Vec<Vec<V>>,
    memo: HashMap<u64, V>,
    containers: Vec<Container>,
    storages: &'a mut S,
    /// Bytes tensors may still materialise.
    byte_budget: usize,
    /// Copying work left: values and string bytes produced by emulated calls, dict keys and
    /// the final conversion. Bounds what memo references to one big value can amplify.
    work: Cell<usize>,
}

impl<S: StorageSource> Drop for Vm<'_, S> {
    fn drop(&mut self) {
        // Empty every container first, so that dropping values never recurses deeply and
        // reference cycles (a list appended to itself) are freed.
        let mut sink: Vec<V> = Vec::new();
        let mut pairs: Vec<(V, V)> = Vec::new();
        for c in &self.containers {
            match c {
                Container::Seq(s) => sink.append(&mut s.borrow_mut()),
                Container::Dict(d) => {
                    let mut d = d.borrow_mut();
                    pairs.append(&mut d.items);
                    d.index.clear();
                }
            }
        }
        self.containers.clear();
        self.stack.clear();
        self.metastack.clear();
        self.memo.clear();
        drop(sink);
        drop(pairs);
    }
}

impl<'a, S: StorageSource> Vm<'a, S> {
    fn new(data: &'a [u8], path: &'a Path, storages: &'a mut S, byte_budget: usize) -> Self {
        Vm {
            data,
            pos: 0,
            path,
            stack: Vec::new(),
            metastack: Vec::new(),
            memo: HashMap::new(),
            containers: Vec::new(),
            storages,
            byte_budget,
            work: Cell::new(data.len().saturating_mul(8).saturating_add(1 << 20)),
        }
    }

    /// Spends `n` units of copying work.
    fn charge(&self, n: usize) -> Result<()> {
        let left = self.work.get();
        if n > left {
            return Err(self.err(format!(
                "the pickle expands to too many values or bytes (over {} units of copying)",
                self.data.len().saturating_mul(8).saturating_add(1 << 20)
            )));
        }
        self.work.set(left - n);
        Ok(())
    }

    fn err(&self, reason: impl std::fmt::Display) -> Error {
        pickle_err(self.path, format!("pickle: {reason}"))
    }

    // --- input -----------------------------------------------------------------------------

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                self.err(format!(
                    "truncated: {n} bytes wanted at byte {} of {}",
                    self.pos,
                    self.data.len()
                ))
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }

    /// A length read from the input; checked against what is left before any allocation.
    fn len_from(&self, n: u64) -> Result<usize> {
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.data.len() - self.pos)
            .ok_or_else(|| {
                self.err(format!(
                    "truncated: length {n} at byte {} exceeds the data",
                    self.pos
                ))
            })
    }

    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.err("truncated: unterminated text argument"))?;
        self.pos += n + 1;
        std::str::from_utf8(&rest[..n]).map_err(|_| self.err("text argument is not UTF-8"))
    }

    fn utf8(&self, b: &[u8]) -> Result<V> {
        std::str::from_utf8(b)
            .map(|s| V::Str(Rc::from(s)))
            .map_err(|_| self.err("string is not valid UTF-8"))
    }

    // --- stack -----------------------------------------------------------------------------

    fn pop(&mut self) -> Result<V> {
        self.stack
            .pop()
            .ok_or_else(|| self.err(format!("stack underflow at byte {}", self.pos - 1)))
    }

    fn top(&self) -> Result<&V> {
        self.stack
            .last()
            .ok_or_else(|| self.err(format!("stack underflow at byte {}", self.pos - 1)))
    }

    fn pop_mark(&mut self) -> Result<Vec<V>> {
        let below = self
            .metastack
            .pop()
            .ok_or_else(|| self.err(format!("no MARK before byte {}", self.pos - 1)))?;
        Ok(std::mem::replace(&mut self.stack, below))
    }

    fn new_seq(&mut self, items: Vec<V>, tuple: bool) -> V {
        let s = Rc::new(RefCell::new(items));
        self.containers.push(Container::Seq(Rc::clone(&s)));
        if tuple {
            V::Tuple(s)
        } else {
            V::List(s)
        }
    }

    fn new_dict(&mut self) -> Shared<Dict> {
        let d = Rc::new(RefCell::new(Dict::default()));
        self.containers.push(Container::Dict(Rc::clone(&d)));
        d
    }

    fn memo_get(&self, idx: u64) -> Result<V> {
        self.memo
            .get(&idx)
            .cloned()
            .ok_or_else(|| self.err(format!("memo index {idx} was never stored")))
    }

    fn memo_put(&mut self, idx: u64) -> Result<()> {
        let v = self.top()?.clone();
        self.memo.insert(idx, v);
        Ok(())
    }

    // --- dicts and lists -------------------------------------------------------------------

    /// Charges the copying budget for converting `v` (strings and bytes by length).
    fn charge_for(&self, v: &V) -> Result<()> {
        self.charge(match v {
            V::Str(s) => 1 + s.len(),
            V::Bytes(b) => 1 + b.len(),
            _ => 1,
        })
    }

    fn key(&self, v: &V, depth: usize) -> Result<Key> {
        if depth > MAX_DEPTH {
            return Err(self.err("dict key nested too deeply"));
        }
        self.charge_for(v)?;
        Ok(match v {
            V::None => Key::None,
            V::Bool(b) => Key::Int(i64::from(*b)),
            V::Int(i) => Key::Int(*i),
            V::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Key::Int(*f as i64),
            V::Float(f) | V::BigInt(f) => Key::Float(f.to_bits()),
            V::Str(s) => Key::Str(Rc::clone(s)),
            V::Bytes(b) => Key::Bytes(Rc::clone(b)),
            V::Global(g) => Key::Global(*g),
            V::Tuple(t) => Key::Tuple(
                t.borrow()
                    .iter()
                    .map(|x| self.key(x, depth + 1))
                    .collect::<Result<_>>()?,
            ),
            other => {
                return Err(self.err(format!("unhashable dict key of type {}", other.type_name())))
            }
        })
    }

    fn dict_set(&self, dict: &Shared<Dict>, k: V, v: V) -> Result<()> {
        let key = self.key(&k, 0)?;
        let mut d = dict.borrow_mut();
        match d.index.get(&key) {
            Some(&i) => d.items[i].1 = v,
            None => {
                let i = d.items.len();
                d.index.insert(key, i);
                d.items.push((k, v));
            }
        }
        Ok(())
    }

    fn set_items(&mut self, items: Vec<V>) -> Result<()> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err("odd number of items for a dict"));
        }
        let V::Dict(dict) = self.top()?.clone() else {
            return Err(self.err(format!(
                "SETITEM(S) on a {}, not a dict",
                self.top()?.type_name()
            )));
        };
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            self.dict_set(&dict, k, v)?;
        }
        Ok(())
    }

    fn extend_list(&mut self, items: Vec<V>) -> Result<()> {
        match self.top()? {
            V::List(l) => {
                let l = Rc::clone(l);
                l.borrow_mut().extend(items);
                Ok(())
            }
            other => Err(self.err(format!("APPEND(S) on a {}, not a list", other.type_name()))),
        }
    }

    // --- the loop --------------------------------------------------------------------------

    fn run(&mut self) -> Result<V> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                // PROTO
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return Err(self.err(format!("unsupported pickle protocol {p}")));
                    }
                }
                // FRAME: only a read-ahead hint.
                0x95 => {
                    self.take(8)?;
                }
                // STOP
                b'.' => return self.pop(),
                // MARK
                b'(' => {
                    let s = std::mem::take(&mut self.stack);
                    self.metastack.push(s);
                }
                // POP
                b'0' => {
                    if self.stack.pop().is_none() {
                        self.pop_mark()?;
                    }
                }
                // POP_MARK
                b'1' => {
                    self.pop_mark()?;
                }
                // DUP
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                b'N' => self.stack.push(V::None),
                0x88 => self.stack.push(V::Bool(true)),
                0x89 => self.stack.push(V::Bool(false)),
                // BININT, BININT1, BININT2
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(V::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(V::Int(i64::from(v)));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.stack.push(V::Int(i64::from(v)));
                }
                // LONG1, LONG4
                0x8a => {
                    let n = usize::from(self.u8()?);
                    let b = self.take(n)?;
                    self.stack.push(decode_long(b));
                }
                0x8b => {
                    let n = self.u32()? as i32;
                    if n < 0 {
                        return Err(self.err("LONG4 with a negative length"));
                    }
                    let n = self.len_from(n as u64)?;
                    let b = self.take(n)?;
                    self.stack.push(decode_long(b));
                }
                // BINFLOAT (big-endian)
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                    self.stack.push(V::Float(v));
                }
                // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => u64::from(self.u32()?),
                        0x8c => u64::from(self.u8()?),
                        _ => self.u64()?,
                    };
                    let n = self.len_from(n)?;
                    let b = self.take(n)?;
                    let v = self.utf8(b)?;
                    self.stack.push(v);
                }
                // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => u64::from(self.u32()?),
                        b'C' => u64::from(self.u8()?),
                        _ => self.u64()?,
                    };
                    let n = self.len_from(n)?;
                    let b = self.take(n)?;
                    self.stack.push(V::Bytes(Rc::from(b)));
                }
                // BINSTRING, SHORT_BINSTRING (Python 2 str: decoded as latin-1)
                b'T' | b'U' => {
                    let n = if op == b'T' {
                        let n = self.u32()? as i32;
                        if n < 0 {
                            return Err(self.err("BINSTRING with a negative length"));
                        }
                        n as u64
                    } else {
                        u64::from(self.u8()?)
                    };
                    let n = self.len_from(n)?;
                    let b = self.take(n)?;
                    let s: String = b.iter().map(|&c| char::from(c)).collect();
                    self.stack.push(V::Str(Rc::from(s)));
                }
                // EMPTY_TUPLE, TUPLE, TUPLE1-3
                b')' => {
                    let v = self.new_seq(Vec::new(), true);
                    self.stack.push(v);
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let v = self.new_seq(items, true);
                    self.stack.push(v);
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return Err(self.err(format!("stack underflow at byte {at}")));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    let v = self.new_seq(items, true);
                    self.stack.push(v);
                }
                // EMPTY_LIST, EMPTY_SET (a set reads as a list)
                b']' | 0x8f => {
                    let v = self.new_seq(Vec::new(), false);
                    self.stack.push(v);
                }
                // APPEND
                b'a' => {
                    let v = self.pop()?;
                    self.extend_list(vec![v])?;
                }
                // APPENDS, ADDITEMS
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    self.extend_list(items)?;
                }
                // LIST
                b'l' => {
                    let items = self.pop_mark()?;
                    let v = self.new_seq(items, false);
                    self.stack.push(v);
                }
                // FROZENSET (reads as a tuple)
                0x91 => {
                    let items = self.pop_mark()?;
                    let v = self.new_seq(items, true);
                    self.stack.push(v);
                }
                // EMPTY_DICT
                b'}' => {
                    let d = self.new_dict();
                    self.stack.push(V::Dict(d));
                }
                // DICT
                b'd' => {
                    let items = self.pop_mark()?;
                    let d = self.new_dict();
                    self.stack.push(V::Dict(d));
                    self.set_items(items)?;
                }
                // SETITEM
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                // SETITEMS
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                // BINPUT, LONG_BINPUT, PUT, MEMOIZE
                b'q' => {
                    let i = self.u8()?;
                    self.memo_put(u64::from(i))?;
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(u64::from(i))?;
                }
                b'p' => {
                    let line = self.line()?;
                    let i = line
                        .parse::<u64>()
                        .map_err(|_| self.err(format!("bad PUT index {line:?}")))?;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = self.memo.len() as u64;
                    self.memo_put(i)?;
                }
                // BINGET, LONG_BINGET, GET
                b'h' => {
                    let i = self.u8()?;
                    let v = self.memo_get(u64::from(i))?;
                    self.stack.push(v);
                }
                b'j' => {
                    let i = self.u32()?;
                    let v = self.memo_get(u64::from(i))?;
                    self.stack.push(v);
                }
                b'g' => {
                    let line = self.line()?;
                    let i = line
                        .parse::<u64>()
                        .map_err(|_| self.err(format!("bad GET index {line:?}")))?;
                    let v = self.memo_get(i)?;
                    self.stack.push(v);
                }
                // GLOBAL
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = self.resolve(module, name)?;
                    self.stack.push(V::Global(g));
                }
                // STACK_GLOBAL
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (V::Str(module), V::Str(name)) = (&module, &name) else {
                        return Err(self.err("STACK_GLOBAL needs two strings"));
                    };
                    let g = self.resolve(module, name)?;
                    self.stack.push(V::Global(g));
                }
                // INST names its class inline: check it, then refuse (never used by torch).
                b'i' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.resolve(module, name)?;
                    return Err(self.err(format!("INST opcode at byte {at} is not supported")));
                }
                // REDUCE
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.reduce(func, args)?;
                    self.stack.push(v);
                }
                // BUILD
                b'b' => {
                    let state = self.pop()?;
                    self.build(state)?;
                }
                // NEWOBJ, NEWOBJ_EX
                0x81 | 0x92 => {
                    if op == 0x92 {
                        self.pop()?; // kwargs
                    }
                    self.pop()?; // args
                    let cls = self.pop()?;
                    match cls {
                        V::Global(g) if g.kind() == Kind::OrderedDict => {
                            let d = self.new_dict();
                            self.stack.push(V::Dict(d));
                        }
                        other => {
                            return Err(self.err(format!(
                                "NEWOBJ on {} is not supported",
                                self.describe(&other)
                            )))
                        }
                    }
                }
                // BINPERSID
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(&pid)?;
                    self.stack.push(v);
                }
                other => {
                    return Err(self.err(format!(
                        "unsupported or unknown opcode 0x{other:02x} ({:?}) at byte {at}",
                        char::from(other)
                    )))
                }
            }
        }
    }

    fn resolve(&self, module: &str, name: &str) -> Result<Global> {
        Global::resolve(module, name).ok_or_else(|| Error::ForbiddenGlobal {
            path: self.path.to_path_buf(),
            module: module.to_string(),
            name: name.to_string(),
        })
    }

    fn describe(&self, v: &V) -> String {
        match v {
            V::Global(g) => g.dotted(),
            other => format!("a {}", other.type_name()),
        }
    }

    // --- emulated calls --------------------------------------------------------------------

    fn reduce(&mut self, func: V, args: V) -> Result<V> {
        let V::Global(g) = func else {
            return Err(self.err(format!("REDUCE on {}", self.describe(&func))));
        };
        let V::Tuple(args) = args else {
            return Err(self.err(format!(
                "REDUCE of {} with {} arguments instead of a tuple",
                g.dotted(),
                args.type_name()
            )));
        };
        // Every emulated call takes at most 8 arguments: check before copying them.
        let n_args = args.borrow().len();
        if n_args > 8 {
            return Err(self.err(format!("{} called with {n_args} arguments", g.dotted())));
        }
        let args: Vec<V> = args.borrow().clone();
        let arity = |ok: &[usize]| -> Result<()> {
            if ok.contains(&args.len()) {
                Ok(())
            } else {
                Err(self.err(format!(
                    "{} called with {} arguments",
                    g.dotted(),
                    args.len()
                )))
            }
        };
        match g.kind() {
            Kind::RebuildTensorV2 => {
                arity(&[6, 7])?;
                let V::Storage(st) = &args[0] else {
                    return Err(self.err("_rebuild_tensor_v2: first argument is not a storage"));
                };
                let dtype = st.dtype.ok_or_else(|| {
                    self.err("_rebuild_tensor_v2 on an untyped storage (dtype unknown)")
                })?;
                self.rebuild_tensor(st, dtype, &args[1], &args[2], &args[3])
                    .map(V::Tensor)
            }
            Kind::RebuildTensorV3 => {
                arity(&[7, 8])?;
                let V::Storage(st) = &args[0] else {
                    return Err(self.err("_rebuild_tensor_v3: first argument is not a storage"));
                };
                let dtype = match &args[6] {
                    V::Global(d) => match d.kind() {
                        Kind::Dtype(Some(dt)) => dt,
                        Kind::Dtype(None) => {
                            return Err(Error::Unsupported {
                                what: format!(
                                    "{}: tensor of dtype {}",
                                    self.path.display(),
                                    d.dotted()
                                ),
                            })
                        }
                        _ => return Err(self.err("_rebuild_tensor_v3: bad dtype argument")),
                    },
                    _ => return Err(self.err("_rebuild_tensor_v3: bad dtype argument")),
                };
                self.rebuild_tensor(st, dtype, &args[1], &args[2], &args[3])
                    .map(V::Tensor)
            }
            Kind::RebuildParameter | Kind::RebuildParameterWithState => {
                arity(if g.kind() == Kind::RebuildParameter {
                    &[3]
                } else {
                    &[4]
                })?;
                match &args[0] {
                    V::Tensor(t) => Ok(V::Tensor(t.clone())),
                    other => Err(self.err(format!(
                        "{} wraps a {}, not a tensor",
                        g.dotted(),
                        other.type_name()
                    ))),
                }
            }
            Kind::OrderedDict => {
                arity(&[0, 1])?;
                let d = self.new_dict();
                if let Some(init) = args.first() {
                    let pairs: Vec<V> = match init {
                        V::List(l) | V::Tuple(l) => {
                            self.charge(l.borrow().len())?;
                            l.borrow().clone()
                        }
                        V::Dict(src) => {
                            self.charge(src.borrow().items.len())?;
                            let items = src.borrow().items.clone();
                            for (k, v) in items {
                                self.dict_set(&d, k, v)?;
                            }
                            Vec::new()
                        }
                        other => {
                            return Err(
                                self.err(format!("OrderedDict built from a {}", other.type_name()))
                            )
                        }
                    };
                    for pair in pairs {
                        let kv = match &pair {
                            V::List(p) | V::Tuple(p) if p.borrow().len() == 2 => p.borrow().clone(),
                            _ => return Err(self.err("OrderedDict item is not a pair")),
                        };
                        let mut kv = kv.into_iter();
                        if let (Some(k), Some(v)) = (kv.next(), kv.next()) {
                            self.dict_set(&d, k, v)?;
                        }
                    }
                }
                Ok(V::Dict(d))
            }
            Kind::Size => {
                arity(&[0, 1])?;
                let items = match args.first() {
                    None => Vec::new(),
                    Some(V::List(l) | V::Tuple(l)) => {
                        self.charge(l.borrow().len())?;
                        l.borrow().clone()
                    }
                    Some(other) => {
                        return Err(
                            self.err(format!("torch.Size built from a {}", other.type_name()))
                        )
                    }
                };
                if items.iter().any(|x| !matches!(x, V::Int(_))) {
                    return Err(self.err("torch.Size holds a non-integer"));
                }
                Ok(self.new_seq(items, true))
            }
            Kind::Device => {
                arity(&[1, 2])?;
                let V::Str(kind) = &args[0] else {
                    return Err(self.err("torch.device: type is not a string"));
                };
                match args.get(1) {
                    None | Some(V::None) => Ok(V::Str(Rc::clone(kind))),
                    Some(V::Int(i)) => Ok(V::Str(Rc::from(format!("{kind}:{i}")))),
                    Some(_) => Err(self.err("torch.device: index is not an integer")),
                }
            }
            Kind::CodecsEncode => {
                arity(&[1, 2])?;
                let V::Str(s) = &args[0] else {
                    return Err(self.err("_codecs.encode of a non-string"));
                };
                self.charge(s.len())?;
                let encoding = match args.get(1) {
                    None => "utf-8".to_string(),
                    Some(V::Str(e)) => e.to_ascii_lowercase().replace('_', "-"),
                    Some(_) => return Err(self.err("_codecs.encode: bad encoding argument")),
                };
                let bytes: Vec<u8> = match encoding.as_str() {
                    "latin1" | "latin-1" | "iso-8859-1" => s
                        .chars()
                        .map(|c| u8::try_from(u32::from(c)))
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|_| self.err("_codecs.encode: character outside latin-1"))?,
                    "utf-8" | "utf8" => s.as_bytes().to_vec(),
                    other => {
                        return Err(
                            self.err(format!("_codecs.encode: unsupported encoding {other:?}"))
                        )
                    }
                };
                Ok(V::Bytes(Rc::from(bytes)))
            }
            Kind::Storage(_) | Kind::UntypedStorage | Kind::Dtype(_) => {
                Err(self.err(format!("{} cannot be called", g.dotted())))
            }
        }
    }

    fn build(&mut self, state: V) -> Result<()> {
        match self.top()? {
            // OrderedDict attribute state (e.g. `_metadata`): ignored, the items are kept.
            V::Dict(_) => match &state {
                V::None | V::Dict(_) => Ok(()),
                V::Tuple(t)
                    if t.borrow().len() == 2
                        && t.borrow().iter().all(|x| matches!(x, V::None | V::Dict(_))) =>
                {
                    Ok(())
                }
                other => Err(self.err(format!("BUILD of a dict with {} state", other.type_name()))),
            },
            other => Err(self.err(format!("BUILD on a {}", other.type_name()))),
        }
    }

    fn persistent_load(&mut self, pid: &V) -> Result<V> {
        let V::Tuple(t) = pid else {
            return Err(self.err(format!(
                "persistent id is a {}, not a tuple",
                pid.type_name()
            )));
        };
        if t.borrow().len() != 5 {
            return Err(self.err(format!(
                "storage persistent id has {} fields, not 5",
                t.borrow().len()
            )));
        }
        let t = t.borrow().clone();
        match t.first() {
            Some(V::Str(s)) if &**s == "storage" => {}
            _ => return Err(self.err("persistent id is not a ('storage', ...) tuple")),
        }
        let dtype = match &t[1] {
            V::Global(g) => match g.kind() {
                Kind::Storage(Some(dt)) => Some(dt),
                Kind::UntypedStorage => None,
                Kind::Storage(None) => {
                    return Err(Error::Unsupported {
                        what: format!("{}: storage type {}", self.path.display(), g.dotted()),
                    })
                }
                _ => return Err(self.err(format!("{} is not a storage type", g.dotted()))),
            },
            other => {
                return Err(self.err(format!(
                    "storage type is a {}, not a storage class",
                    other.type_name()
                )))
            }
        };
        let V::Str(key) = &t[2] else {
            return Err(self.err("storage key is not a string"));
        };
        let V::Int(numel) = t[4] else {
            return Err(self.err("storage size is not an integer"));
        };
        let elem = dtype.map_or(1, TorchDtype::size_in_bytes) as u64;
        let nbytes = u64::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(elem))
            .ok_or_else(|| self.err(format!("storage `{key}` has bad size {numel}")))?;
        let data = self.storages.storage(key)?;
        if data.len() as u64 != nbytes {
            return Err(self.err(format!(
                "storage `{key}` holds {} bytes but the pickle says {nbytes}",
                data.len()
            )));
        }
        Ok(V::Storage(Rc::new(Storage {
            dtype,
            key: key.to_string(),
            data,
        })))
    }

    fn int_seq(&self, v: &V, what: &str) -> Result<Vec<usize>> {
        let items = match v {
            V::Tuple(t) | V::List(t) if t.borrow().len() > MAX_DIMS => {
                return Err(self.err(format!("tensor has {} dimensions", t.borrow().len())))
            }
            V::Tuple(t) | V::List(t) => t.borrow().clone(),
            other => {
                return Err(self.err(format!(
                    "tensor {what} is a {}, not a tuple",
                    other.type_name()
                )))
            }
        };
        items
            .iter()
            .map(|x| match x {
                V::Int(i) => {
                    usize::try_from(*i).map_err(|_| self.err(format!("negative tensor {what} {i}")))
                }
                _ => Err(self.err(format!("tensor {what} holds a non-integer"))),
            })
            .collect()
    }

    /// Copies the view (offset, size, stride) of `st` into a row-major tensor.
    fn rebuild_tensor(
        &mut self,
        st: &Storage,
        dtype: TorchDtype,
        offset: &V,
        size: &V,
        stride: &V,
    ) -> Result<TorchTensor> {
        let offset = match offset {
            V::Int(o) => {
                usize::try_from(*o).map_err(|_| self.err(format!("negative storage offset {o}")))?
            }
            _ => return Err(self.err("storage offset is not an integer")),
        };
        let size = self.int_seq(size, "size")?;
        let stride = self.int_seq(stride, "stride")?;
        if size.len() != stride.len() {
            return Err(self.err(format!(
                "tensor size {size:?} and stride {stride:?} differ in length"
            )));
        }
        let elem = dtype.size_in_bytes();
        if !st.data.len().is_multiple_of(elem) {
            return Err(self.err(format!(
                "storage `{}` ({} bytes) is not a whole number of {} elements",
                st.key,
                st.data.len(),
                dtype.torch_name()
            )));
        }
        let storage_elems = st.data.len() / elem;
        let numel = size
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| self.err(format!("tensor size {size:?} overflows")))?;
        let nbytes = numel
            .checked_mul(elem)
            .ok_or_else(|| self.err(format!("tensor size {size:?} overflows")))?;
        let out_of_bounds = || {
            self.err(format!(
                "tensor view (offset {offset}, size {size:?}, stride {stride:?}) exceeds \
                 storage `{}` of {storage_elems} elements",
                st.key
            ))
        };
        if numel > 0 {
            let mut last = offset;
            for (&d, &s) in size.iter().zip(&stride) {
                last = (d - 1)
                    .checked_mul(s)
                    .and_then(|x| x.checked_add(last))
                    .ok_or_else(out_of_bounds)?;
            }
            if last >= storage_elems {
                return Err(out_of_bounds());
            }
        } else if offset > storage_elems {
            return Err(out_of_bounds());
        }
        if nbytes > self.byte_budget {
            return Err(self.err(format!(
                "tensors would materialise more than the {} byte limit for this file",
                self.byte_budget
            )));
        }
        self.byte_budget -= nbytes;

        let src = &st.data[..];
        let mut data = Vec::with_capacity(nbytes);
        // Row-major contiguous: one copy.
        let mut expect = 1usize;
        let mut contiguous = true;
        for (&d, &s) in size.iter().zip(&stride).rev() {
            if d != 1 && s != expect {
                contiguous = false;
                break;
            }
            expect = expect.saturating_mul(d);
        }
        if contiguous || numel == 0 {
            // For numel == 0 this is an empty slice at an offset checked above.
            data.extend_from_slice(&src[offset * elem..offset * elem + nbytes]);
        } else {
            // All indices below are at most `last`, checked above, so nothing overflows.
            let nd = size.len();
            let (inner_n, inner_s) = (size[nd - 1], stride[nd - 1]);
            let mut idx = vec![0usize; nd - 1];
            for _ in 0..numel / inner_n {
                let base = offset + idx.iter().zip(&stride).map(|(&i, &s)| i * s).sum::<usize>();
                for j in 0..inner_n {
                    let at = (base + j * inner_s) * elem;
                    data.extend_from_slice(&src[at..at + elem]);
                }
                for k in (0..nd - 1).rev() {
                    idx[k] += 1;
                    if idx[k] < size[k] {
                        break;
                    }
                    idx[k] = 0;
                }
            }
        }
        Ok(TorchTensor {
            shape: size,
            dtype,
            data: Arc::new(data),
        })
    }

    // --- result ----------------------------------------------------------------------------

    fn to_value(&self, v: &V) -> Result<TorchValue> {
        self.convert(v, 0)
    }

    fn convert(&self, v: &V, depth: usize) -> Result<TorchValue> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!(
                "values nested more than {MAX_DEPTH} deep (or self-referencing)"
            )));
        }
        self.charge_for(v)?;
        Ok(match v {
            V::None => TorchValue::None,
            V::Bool(b) => TorchValue::Bool(*b),
            V::Int(i) => TorchValue::Int(*i),
            V::BigInt(f) | V::Float(f) => TorchValue::Float(*f),
            V::Str(s) => TorchValue::Str(s.to_string()),
            V::Bytes(b) => TorchValue::Bytes(b.to_vec()),
            V::Tensor(t) => TorchValue::Tensor(t.clone()),
            V::List(l) => TorchValue::List(self.convert_seq(&l.borrow(), depth)?),
            V::Tuple(t) => TorchValue::Tuple(self.convert_seq(&t.borrow(), depth)?),
            V::Dict(d) => {
                let d = d.borrow();
                let mut out = Vec::with_capacity(d.items.len().min(self.work.get()));
                for (k, v) in &d.items {
                    out.push((self.convert(k, depth + 1)?, self.convert(v, depth + 1)?));
                }
                TorchValue::Dict(out)
            }
            V::Global(g) => match g.kind() {
                Kind::Dtype(Some(dt)) => TorchValue::Str(dt.torch_name().to_string()),
                _ => TorchValue::Str(g.dotted()),
            },
            V::Storage(st) => {
                return Err(Error::Unsupported {
                    what: format!(
                        "{}: a bare storage object (`{}`) outside a tensor",
                        self.path.display(),
                        st.key
                    ),
                })
            }
        })
    }

    fn convert_seq(&self, items: &[V], depth: usize) -> Result<Vec<TorchValue>> {
        let mut out = Vec::with_capacity(items.len().min(self.work.get()));
        for x in items {
            out.push(self.convert(x, depth + 1)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Storages from a map, for running hand-written pickles.
    struct MapStorages(HashMap<String, Rc<Vec<u8>>>);

    impl StorageSource for MapStorages {
        fn storage(&mut self, key: &str) -> Result<Rc<Vec<u8>>> {
            self.0
                .get(key)
                .cloned()
                .ok_or_else(|| pickle_err(Path::new("t"), format!("missing {key}")))
        }
    }

    fn run(pickle: &[u8]) -> Result<TorchValue> {
        let mut st = MapStorages(HashMap::new());
        st.0.insert("0".into(), Rc::new((0u8..24).collect()));
        let path = Path::new("t.pt");
        let mut vm = Vm::new(pickle, path, &mut st, 1 << 20);
        let v = vm.run()?;
        vm.to_value(&v)
    }

    #[test]
    fn longs_decode() {
        let int = |b: &[u8]| match decode_long(b) {
            V::Int(i) => Some(i),
            _ => None,
        };
        assert_eq!(int(&[]), Some(0));
        assert_eq!(int(&[0xff]), Some(-1));
        assert_eq!(int(&[0x80, 0x00]), Some(128));
        assert_eq!(int(&[0xff; 9]), Some(-1));
        assert_eq!(int(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0xff]), Some(i64::MIN));
        assert_eq!(int(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0x00]), None);
        let big = |b: &[u8]| match decode_long(b) {
            V::BigInt(f) => f,
            _ => f64::NAN,
        };
        assert_eq!(big(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0x00]), 2f64.powi(63));
        assert_eq!(big(&[0, 0, 0, 0, 0, 0, 0, 0, 0xfe]), -(2f64.powi(65)));
        let mut b = vec![0u8; 40];
        b[39] = 0x01;
        b[0] = 1;
        assert_eq!(big(&b), 2f64.powi(312));
    }

    #[test]
    fn builds_containers_and_shares_them() {
        // d = {}; l = [d, d]; d["a"] = 1 (mutation after memo is visible through the memo).
        let p = b"\x80\x02}q\x00]q\x01(h\x00h\x00eh\x00X\x01\x00\x00\x00aK\x01s0.";
        // Stack at STOP is [list]; the dict was mutated after both references were appended.
        let v = run(p).unwrap();
        let items = v.as_list().unwrap();
        assert_eq!(items.len(), 2);
        for d in items {
            assert_eq!(d.get("a").and_then(TorchValue::as_int), Some(1));
        }
    }

    #[test]
    fn forbidden_global_is_refused_at_the_opcode() {
        let err = run(b"\x80\x02cos\nsystem\n").unwrap_err();
        assert!(
            matches!(err, Error::ForbiddenGlobal { ref module, ref name, .. }
            if module == "os" && name == "system")
        );
        let err = run(b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93").unwrap_err();
        assert!(matches!(err, Error::ForbiddenGlobal { .. }));
    }

    #[test]
    fn cycles_and_deep_nesting_are_errors_not_crashes() {
        // l = []; l.append(l)
        assert!(run(b"]2a.").is_err());
        // 200 000 nested 1-tuples.
        let mut p = b")".to_vec();
        p.extend(std::iter::repeat_n(0x85u8, 200_000));
        p.push(b'.');
        assert!(run(&p).is_err());
        // POP of a deep value during the run.
        let mut p = b")".to_vec();
        p.extend(std::iter::repeat_n(0x85u8, 200_000));
        p.extend(b"0N.");
        assert_eq!(run(&p).unwrap(), TorchValue::None);
    }

    #[test]
    fn exponential_sharing_is_bounded() {
        // x = []; then 60 times: x = [x, x]
        let mut p = b"]".to_vec();
        for _ in 0..60 {
            p.extend(b"q\x00(h\x00h\x00l");
        }
        p.push(b'.');
        let err = run(&p).unwrap_err();
        assert!(err.to_string().contains("too many"), "{err}");
    }

    fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let i = hay.windows(from.len()).position(|w| w == from).unwrap();
        [&hay[..i], to, &hay[i + from.len()..]].concat()
    }

    #[test]
    fn tensor_views() {
        // storage of 6 f32 (key "0", bytes 0..24); view offset 1, size (2,2), stride (1,3).
        let p = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x06tQK\x01K\x02K\x02\x86K\x01K\x03\x86\x89ccollections\nOrderedDict\n)Rtq\x00R.";
        let v = run(p).unwrap();
        let t = v.as_tensor().unwrap();
        assert_eq!(t.shape, vec![2, 2]);
        let words: Vec<u32> = t
            .raw_bytes()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        // Elements (row-major) at storage indices 1, 4, 2, 5.
        let at = |i: u32| {
            u32::from_le_bytes([
                4 * i as u8,
                4 * i as u8 + 1,
                4 * i as u8 + 2,
                4 * i as u8 + 3,
            ])
        };
        assert_eq!(words, vec![at(1), at(4), at(2), at(5)]);
        // Out of bounds: stride 4 reaches element 1 + 4 + 3 = 8.
        let bad = replace(p, b"K\x01K\x03\x86", b"K\x01K\x04\x86");
        assert!(run(&bad).unwrap_err().to_string().contains("exceeds"));
    }
}
