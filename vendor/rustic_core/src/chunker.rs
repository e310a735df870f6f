use std::{
    io::Read,
    sync::{Mutex, PoisonError},
};

mod fixed_size;
pub mod rabin;

use fixed_size::ChunkIter as FixedSizeChunkIter;
use rabin::ChunkIter as RabinChunkIter;
use rustic_cdc::{Polynom64, Rabin64};

use crate::{
    RusticResult,
    repofile::{ConfigFile, configfile::Chunker},
};

/// `ChunkIter` is an iterator that chunks data.
pub(crate) enum ChunkIter<R: Read + Send> {
    Rabin(Box<RabinChunkIter<R>>),
    FixedSize(FixedSizeChunkIter<R>),
}

impl<R: Read + Send> ChunkIter<R> {
    pub(crate) fn from_config(
        config: &ConfigFile,
        reader: R,
        size_hint: usize,
    ) -> RusticResult<Self> {
        let iter = match config.chunker() {
            Chunker::Rabin => {
                let poly = config.poly()?;
                let rabin = rabin_for(poly);
                Self::Rabin(Box::new(RabinChunkIter::new(
                    rabin,
                    config.chunk_size(),
                    config.chunk_min_size(),
                    config.chunk_max_size(),
                    reader,
                    size_hint,
                )?))
            }
            Chunker::FixedSize => Self::FixedSize(FixedSizeChunkIter::new(
                config.chunk_size(),
                reader,
                size_hint,
            )),
        };
        Ok(iter)
    }
}

/// kopi-docka patch: a fresh [`Rabin64`] for `poly`, cloned from one built once per polynomial.
///
/// `Rabin64::new_with_polynom` computes two 256-entry lookup tables, about 0.5 ms; doing that
/// for every file made a first backup of 50,000 small files spend most of its time there. The
/// cached one is never used for hashing (and the chunker resets the window before each chunk),
/// so its clone chunks exactly as a newly built one.
fn rabin_for(poly: Polynom64) -> Rabin64 {
    // A repository has one polynomial; a process rarely opens more than a few repositories.
    static CACHE: Mutex<Vec<(Polynom64, Rabin64)>> = Mutex::new(Vec::new());
    // Poisoned only if building a `Rabin64` panicked; the entries present are still whole.
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, rabin)) = cache.iter().find(|(p, _)| *p == poly) {
        return rabin.clone();
    }
    let rabin = Rabin64::new_with_polynom(6, &poly);
    cache.push((poly, rabin.clone()));
    rabin
}

impl<R: Read + Send> Iterator for ChunkIter<R> {
    type Item = RusticResult<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Rabin(rabin) => rabin.next(),
            Self::FixedSize(fixed_size) => fixed_size.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use rand::prelude::*;

    use super::*;

    /// kopi-docka patch: a cached `Rabin64`, handed out again and again and for more than one
    /// polynomial, cuts where a newly built one does.
    #[test]
    fn cached_rabin_chunks_like_a_new_one() {
        let mut data = vec![0; 4 << 20];
        StdRng::seed_from_u64(42).fill_bytes(&mut data);
        let chunks = |rabin| {
            RabinChunkIter::new(
                rabin,
                1 << 20,
                512 << 10,
                8 << 20,
                Cursor::new(&data),
                data.len(),
            )
            .unwrap()
            .map(|chunk| chunk.unwrap().len())
            .collect::<Vec<_>>()
        };
        let polys = [0x003D_A335_8B4D_C173, 0x0030_1B5B_0A40_6E53];
        let expected = polys.map(|poly| chunks(Rabin64::new_with_polynom(6, &poly)));
        assert!(expected[0].len() > 1, "the data must be cut: {expected:?}");
        assert_ne!(
            expected[0], expected[1],
            "the polynomials must cut differently"
        );
        for _ in 0..3 {
            for (poly, expected) in polys.iter().zip(&expected) {
                assert_eq!(&chunks(rabin_for(*poly)), expected, "polynomial {poly:#x}");
            }
        }
    }
}
