//! The shape of the `upstream` helper's `/chunked/` answers (`src/bin/upstream.rs`), shared
//! with the tests that check them byte for byte.

/// Pieces of a `/chunked/` body, each written on its own.
pub const PIECES: usize = 4;
/// Lines (`same URI\n`) in each piece.
pub const LINES_PER_PIECE: usize = 100;
/// The line whose word differs (`sane` for `same`) in a variant's `/chunked/body/` answers:
/// (piece, line in the piece), in the middle of the body.
pub const DIFFERING_LINE: (usize, usize) = (PIECES / 2, LINES_PER_PIECE / 2);
