//! The Megatron-LM indexed dataset (`.bin` + `.idx`), written and read without Python.
//!
//! `.bin` holds every sequence's tokens back to back (uint16 when the vocabulary fits, else
//! int32), little-endian. `.idx` is Megatron's `_IndexWriter` layout:
//!
//! | bytes | field |
//! |---|---|
//! | 9 | `MMIDIDX\x00\x00` |
//! | 8 | version, u64 = 1 |
//! | 1 | dtype code, u8 (1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64, 7 float32, 8 uint16) |
//! | 8 | sequence count N, u64 |
//! | 8 | document-index count D, u64 (= documents + 1) |
//! | 4N | sequence lengths, int32 |
//! | 8N | sequence byte offsets in `.bin`, int64 |
//! | 8D | document indices, int64: `[0, ..]`, document `d` is sequences `[di[d], di[d+1])` |
//!
//! Here every document is one sequence, so the document indices are `0, 1, ..., N`. The writer
//! hashes both files (SHA-256) as it writes them.

pub mod sha256;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
pub use sha256::Sha256;

/// The first 9 bytes of every `.idx` file.
pub const INDEX_HEADER: &[u8; 9] = b"MMIDIDX\x00\x00";
/// Bytes before the sequence lengths: magic, version, dtype code, two counts.
pub const HEADER_BYTES: usize = 9 + 8 + 1 + 8 + 8;

/// Token storage type of a `.bin` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    U16,
    I32,
}

impl DType {
    /// Megatron's `DType` code.
    pub fn code(self) -> u8 {
        match self {
            DType::U16 => 8,
            DType::I32 => 4,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            8 => Some(DType::U16),
            4 => Some(DType::I32),
            _ => None,
        }
    }

    /// Bytes per token.
    pub fn size(self) -> usize {
        match self {
            DType::U16 => 2,
            DType::I32 => 4,
        }
    }

    /// NumPy name.
    pub fn name(self) -> &'static str {
        match self {
            DType::U16 => "uint16",
            DType::I32 => "int32",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "uint16" => Some(DType::U16),
            "int32" => Some(DType::I32),
            _ => None,
        }
    }

    /// Megatron's `DType.optimal_dtype`: uint16 below 65,500 distinct ids, else int32.
    pub fn for_cardinality(ids: u64) -> Self {
        if ids < 65_500 {
            DType::U16
        } else {
            DType::I32
        }
    }

    fn max_id(self) -> u32 {
        match self {
            DType::U16 => u16::MAX as u32,
            DType::I32 => i32::MAX as u32,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A buffered file writer that hashes and counts what it writes.
struct HashingFile {
    path: PathBuf,
    out: BufWriter<File>,
    hash: Sha256,
    bytes: u64,
}

impl HashingFile {
    fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(io_err(path))?;
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
            bytes: 0,
        })
    }

    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.hash.update(data);
        self.bytes += data.len() as u64;
        self.out.write_all(data).map_err(io_err(&self.path))
    }

    /// Flush, fsync, and return (sha256 hex, bytes).
    fn finish(self) -> Result<(String, u64)> {
        let path = self.path;
        let file = self.out.into_inner().map_err(|e| Error::Io {
            path: path.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_err(&path))?;
        Ok((self.hash.finish_hex(), self.bytes))
    }
}

/// What [`ShardWriter::finish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSummary {
    pub dtype: DType,
    pub documents: u64,
    pub tokens: u64,
    pub bin_sha256: String,
    pub bin_bytes: u64,
    pub idx_sha256: String,
    pub idx_bytes: u64,
}

/// Writes one `.bin`/`.idx` pair, one sequence per document.
///
/// The files are written in place at the paths given (the caller publishes them atomically:
/// temporary names, then rename); `.idx` is written by [`finish`](Self::finish).
pub struct ShardWriter {
    bin: HashingFile,
    idx_path: PathBuf,
    dtype: DType,
    eos: Option<u32>,
    lengths: Vec<i32>,
    tokens: u64,
    scratch: Vec<u8>,
}

impl ShardWriter {
    /// Create (truncate) `bin_path`; `eos`, when given, ends every document added with
    /// [`add_document`](Self::add_document).
    pub fn create(
        bin_path: &Path,
        idx_path: &Path,
        dtype: DType,
        eos: Option<u32>,
    ) -> Result<Self> {
        if let Some(eos) = eos {
            if eos > dtype.max_id() {
                return Err(Error::InvalidArgument(format!(
                    "end-of-text id {eos} does not fit in {}",
                    dtype.name()
                )));
            }
        }
        Ok(Self {
            bin: HashingFile::create(bin_path)?,
            idx_path: idx_path.to_path_buf(),
            dtype,
            eos,
            lengths: Vec::new(),
            tokens: 0,
            scratch: Vec::new(),
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Documents added so far.
    pub fn documents(&self) -> u64 {
        self.lengths.len() as u64
    }

    /// Tokens written so far (end-of-text tokens included).
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Append one document: its ids, then the end-of-text id if the writer has one.
    pub fn add_document(&mut self, ids: &[u32]) -> Result<()> {
        let n = ids.len() + usize::from(self.eos.is_some());
        if n > i32::MAX as usize {
            return Err(Error::InvalidArgument(format!(
                "document of {n} tokens is longer than an int32 sequence length"
            )));
        }
        let max = self.dtype.max_id();
        if let Some(&bad) = ids.iter().find(|&&id| id > max) {
            return Err(Error::InvalidArgument(format!(
                "token id {bad} does not fit in {}",
                self.dtype.name()
            )));
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let all = ids.iter().copied().chain(self.eos);
        match self.dtype {
            DType::U16 => all.for_each(|id| scratch.extend_from_slice(&(id as u16).to_le_bytes())),
            DType::I32 => all.for_each(|id| scratch.extend_from_slice(&(id as i32).to_le_bytes())),
        }
        let written = self.bin.write(&scratch);
        self.scratch = scratch;
        written?;
        self.lengths.push(n as i32);
        self.tokens += n as u64;
        Ok(())
    }

    /// Append one already-encoded sequence (`tokens` tokens of this writer's dtype, end-of-text
    /// included if wanted), e.g. a sequence copied from another shard.
    pub fn add_raw(&mut self, bytes: &[u8], tokens: usize) -> Result<()> {
        if bytes.len() != tokens * self.dtype.size() || tokens > i32::MAX as usize {
            return Err(Error::InvalidArgument(format!(
                "{} bytes are not {tokens} {} tokens",
                bytes.len(),
                self.dtype.name()
            )));
        }
        self.bin.write(bytes)?;
        self.lengths.push(tokens as i32);
        self.tokens += tokens as u64;
        Ok(())
    }

    /// Append sequence `i` of `reader` (same dtype) as it is.
    pub fn copy_from(&mut self, reader: &ShardReader, i: usize, buf: &mut Vec<u8>) -> Result<()> {
        if reader.dtype != self.dtype {
            return Err(Error::InvalidArgument(format!(
                "cannot copy {} sequences into a {} shard",
                reader.dtype.name(),
                self.dtype.name()
            )));
        }
        reader.read_raw(i, buf)?;
        let tokens = reader.sequence_len(i);
        self.add_raw(buf, tokens)
    }

    /// Write the `.idx`, flush and fsync both files.
    pub fn finish(self) -> Result<ShardSummary> {
        let (bin_sha256, bin_bytes) = self.bin.finish()?;
        let mut idx = HashingFile::create(&self.idx_path)?;
        let n = self.lengths.len() as u64;
        idx.write(INDEX_HEADER)?;
        idx.write(&1u64.to_le_bytes())?;
        idx.write(&[self.dtype.code()])?;
        idx.write(&n.to_le_bytes())?;
        idx.write(&(n + 1).to_le_bytes())?;
        let mut buf = Vec::with_capacity(self.lengths.len() * 8);
        for len in &self.lengths {
            buf.extend_from_slice(&len.to_le_bytes());
        }
        idx.write(&buf)?;
        buf.clear();
        let mut at = 0i64;
        for len in &self.lengths {
            buf.extend_from_slice(&at.to_le_bytes());
            at += i64::from(*len) * self.dtype.size() as i64;
        }
        idx.write(&buf)?;
        buf.clear();
        for d in 0..=n as i64 {
            buf.extend_from_slice(&d.to_le_bytes());
        }
        idx.write(&buf)?;
        let (idx_sha256, idx_bytes) = idx.finish()?;
        Ok(ShardSummary {
            dtype: self.dtype,
            documents: n,
            tokens: self.tokens,
            bin_sha256,
            bin_bytes,
            idx_sha256,
            idx_bytes,
        })
    }
}

/// Reads sequences of a `.bin`/`.idx` pair (positional reads; the index is held in memory).
#[derive(Debug)]
pub struct ShardReader {
    bin_path: PathBuf,
    bin: File,
    dtype: DType,
    lengths: Vec<i32>,
    pointers: Vec<i64>,
    document_indices: Vec<i64>,
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

impl ShardReader {
    /// Open a pair, checking the index against itself and the `.bin` size.
    pub fn open(bin_path: &Path, idx_path: &Path) -> Result<Self> {
        let idx = std::fs::read(idx_path).map_err(io_err(idx_path))?;
        let bad = |message: String| Error::Format {
            path: idx_path.display().to_string(),
            message,
        };
        if idx.len() < HEADER_BYTES || &idx[..9] != INDEX_HEADER {
            return Err(bad("not a Megatron .idx file (bad header)".into()));
        }
        let version = le_u64(&idx[9..17]);
        if version != 1 {
            return Err(bad(format!("index version {version}, expected 1")));
        }
        let dtype = DType::from_code(idx[17]).ok_or_else(|| {
            bad(format!(
                "dtype code {} (supported: 8 uint16, 4 int32)",
                idx[17]
            ))
        })?;
        let n = le_u64(&idx[18..26]) as usize;
        let d = le_u64(&idx[26..34]) as usize;
        let need = HEADER_BYTES as u128 + 12 * n as u128 + 8 * d as u128;
        if (idx.len() as u128) < need {
            return Err(bad(format!(
                "{} bytes, but {n} sequences and {d} document indices need {need}",
                idx.len()
            )));
        }
        let mut at = HEADER_BYTES;
        let lengths: Vec<i32> = idx[at..at + 4 * n]
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        at += 4 * n;
        let pointers: Vec<i64> = idx[at..at + 8 * n]
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        at += 8 * n;
        let document_indices: Vec<i64> = idx[at..at + 8 * d]
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let bin = File::open(bin_path).map_err(io_err(bin_path))?;
        let bin_len = bin.metadata().map_err(io_err(bin_path))?.len();
        let size = dtype.size() as i64;
        for i in 0..n {
            let end = pointers[i] + i64::from(lengths[i]) * size;
            if lengths[i] < 0 || pointers[i] < 0 || end as u64 > bin_len {
                return Err(bad(format!(
                    "sequence {i} (offset {}, {} tokens) lies outside {} ({bin_len} bytes)",
                    pointers[i],
                    lengths[i],
                    bin_path.display()
                )));
            }
        }
        Ok(Self {
            bin_path: bin_path.to_path_buf(),
            bin,
            dtype,
            lengths,
            pointers,
            document_indices,
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    pub fn sequence_len(&self, i: usize) -> usize {
        self.lengths[i] as usize
    }

    pub fn lengths(&self) -> &[i32] {
        &self.lengths
    }

    pub fn document_indices(&self) -> &[i64] {
        &self.document_indices
    }

    fn check(&self, i: usize) -> Result<()> {
        if i >= self.len() {
            return Err(Error::InvalidArgument(format!(
                "sequence {i} out of range ({} sequences in {})",
                self.len(),
                self.bin_path.display()
            )));
        }
        Ok(())
    }

    /// The stored bytes of sequence `i` into `buf`.
    pub fn read_raw(&self, i: usize, buf: &mut Vec<u8>) -> Result<()> {
        self.check(i)?;
        buf.resize(self.lengths[i] as usize * self.dtype.size(), 0);
        read_exact_at(&self.bin, buf, self.pointers[i] as u64).map_err(io_err(&self.bin_path))
    }

    /// The ids of sequence `i`.
    pub fn read(&self, i: usize) -> Result<Vec<u32>> {
        let mut buf = Vec::new();
        self.read_raw(i, &mut buf)?;
        Ok(match self.dtype {
            DType::U16 => buf
                .chunks_exact(2)
                .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            DType::I32 => buf
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u32)
                .collect(),
        })
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = file;
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("phicorpus-shard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn idx_layout_is_megatron() {
        let (bin, idx) = (tmp("a.bin"), tmp("a.idx"));
        let mut w = ShardWriter::create(&bin, &idx, DType::U16, Some(0)).unwrap();
        w.add_document(&[5, 6, 7]).unwrap();
        w.add_document(&[]).unwrap();
        w.add_document(&[65_535]).unwrap();
        let s = w.finish().unwrap();
        assert_eq!((s.documents, s.tokens), (3, 7));
        let raw = std::fs::read(&idx).unwrap();
        assert_eq!(&raw[..9], b"MMIDIDX\x00\x00");
        assert_eq!(le_u64(&raw[9..17]), 1);
        assert_eq!(raw[17], 8);
        assert_eq!(le_u64(&raw[18..26]), 3);
        assert_eq!(le_u64(&raw[26..34]), 4);
        assert_eq!(raw.len(), 34 + 3 * 4 + 3 * 8 + 4 * 8);
        let bin_raw = std::fs::read(&bin).unwrap();
        assert_eq!(bin_raw, [5, 0, 6, 0, 7, 0, 0, 0, 0, 0, 255, 255, 0, 0]);
        let mut h = Sha256::new();
        h.update(&bin_raw);
        assert_eq!(h.finish_hex(), s.bin_sha256);

        let r = ShardReader::open(&bin, &idx).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r.read(0).unwrap(), vec![5, 6, 7, 0]);
        assert_eq!(r.read(1).unwrap(), vec![0]);
        assert_eq!(r.read(2).unwrap(), vec![65_535, 0]);
        assert_eq!(r.document_indices(), &[0, 1, 2, 3]);
    }

    #[test]
    fn int32_and_copy() {
        let (bin, idx) = (tmp("b.bin"), tmp("b.idx"));
        let mut w = ShardWriter::create(&bin, &idx, DType::I32, None).unwrap();
        w.add_document(&[100_000, 1]).unwrap();
        w.add_document(&[2]).unwrap();
        w.finish().unwrap();
        let r = ShardReader::open(&bin, &idx).unwrap();
        let (bin2, idx2) = (tmp("c.bin"), tmp("c.idx"));
        let mut w2 = ShardWriter::create(&bin2, &idx2, DType::I32, None).unwrap();
        let mut buf = Vec::new();
        w2.copy_from(&r, 1, &mut buf).unwrap();
        w2.copy_from(&r, 0, &mut buf).unwrap();
        w2.finish().unwrap();
        let r2 = ShardReader::open(&bin2, &idx2).unwrap();
        assert_eq!(r2.read(0).unwrap(), vec![2]);
        assert_eq!(r2.read(1).unwrap(), vec![100_000, 1]);
        assert!(r2.read(2).is_err());
    }

    #[test]
    fn rejects_ids_that_do_not_fit() {
        let (bin, idx) = (tmp("d.bin"), tmp("d.idx"));
        let mut w = ShardWriter::create(&bin, &idx, DType::U16, None).unwrap();
        assert!(w.add_document(&[70_000]).is_err());
        assert!(ShardWriter::create(&bin, &idx, DType::U16, Some(70_000)).is_err());
        assert_eq!(DType::for_cardinality(50_257), DType::U16);
        assert_eq!(DType::for_cardinality(128_256), DType::I32);
    }

    #[test]
    fn rejects_a_bad_index() {
        let (bin, idx) = (tmp("e.bin"), tmp("e.idx"));
        let mut w = ShardWriter::create(&bin, &idx, DType::U16, Some(1)).unwrap();
        w.add_document(&[3, 4]).unwrap();
        w.finish().unwrap();
        std::fs::write(&bin, [0u8; 2]).unwrap(); // truncated .bin
        assert!(ShardReader::open(&bin, &idx).is_err());
        std::fs::write(&idx, b"garbage").unwrap();
        assert!(ShardReader::open(&bin, &idx).is_err());
    }
}
