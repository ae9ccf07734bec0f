//! Host-side planning of the CUDA backend's calls, pure and unit-tested without a GPU: row-major
//! products as cuBLASLt's column-major shapes, and the token groups and chunks of the embedding gradient.

use bertfit_cuda::{DType, GemmShape};

use crate::engine::backend::Gemm;

/// A strided operand as cuBLASLt sees it: (transposed?, leading dimension, elements spanned).
fn lt_layout(rs: usize, cs: usize, rows: usize, cols: usize, what: &str) -> std::result::Result<(bool, usize, usize), String> {
    if cs == 1 && rs >= cols {
        // row-major: as column-major it is its own transpose, leading dimension rs
        Ok((false, rs, (rows - 1) * rs + cols))
    } else if rs == 1 && cs >= rows {
        Ok((true, cs, (cols - 1) * cs + rows))
    } else {
        Err(format!("{what} operand with strides ({rs}, {cs}) for {rows}×{cols}"))
    }
}

/// A row-major product `c (m × n, row stride n) = a (m × k) · b (k × n)` with operand strides `(rs, cs)`,
/// in cuBLASLt's column-major terms: `cᵀ = bᵀ · aᵀ`, so cuBLASLt's A is our `b` and its B our `a`. Each
/// operand must be row-major (`cs == 1`) or column-major (`rs == 1`) with a leading dimension no smaller
/// than its contiguous extent. Returns the shape (f32, one product; the caller sets types and batches) and
/// the element spans our `a` and our `b` touch.
pub fn lt_raw(m: usize, n: usize, k: usize, a: (usize, usize), b: (usize, usize), accumulate: bool) -> std::result::Result<(GemmShape, usize, usize), String> {
    if m == 0 || n == 0 || k == 0 {
        return Err(format!("empty product {m}×{n}×{k}"));
    }
    let (b_col, ldb, b_span) = lt_layout(b.0, b.1, k, n, "right")?;
    let (a_col, lda, a_span) = lt_layout(a.0, a.1, m, k, "left")?;
    let shape = GemmShape {
        m: n as u64,
        n: m as u64,
        k: k as u64,
        trans_a: b_col,
        trans_b: a_col,
        lda: ldb as u64,
        ldb: lda as u64,
        ldd: n as u64,
        a: DType::F32,
        b: DType::F32,
        d: DType::F32,
        bias: false,
        accumulate,
        batch: 1,
        strides: [0; 3],
    };
    Ok((shape, a_span, b_span))
}

/// [`lt_raw`] for an engine product.
pub fn lt_shape(g: &Gemm) -> std::result::Result<(GemmShape, usize, usize), String> {
    lt_raw(g.m, g.n, g.k, (g.a.rs, g.a.cs), (g.b.rs, g.b.cs), g.accumulate)
}

/// Token indices grouped by table row, stable: `(order, starts, rows)` with group `i` holding the tokens
/// `order[starts[i]..starts[i + 1]]` (ascending) of table row `rows[i]`.
pub fn group_rows(index: &[u32], table_rows: usize) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let mut count = vec![0u32; table_rows + 1];
    for &i in index {
        count[i as usize + 1] += 1;
    }
    for r in 0..table_rows {
        count[r + 1] += count[r];
    }
    let mut fill = count.clone();
    let mut order = vec![0u32; index.len()];
    for (t, &i) in index.iter().enumerate() {
        order[fill[i as usize] as usize] = t as u32;
        fill[i as usize] += 1;
    }
    let (mut starts, mut rows) = (Vec::new(), Vec::new());
    for r in 0..table_rows {
        if count[r + 1] > count[r] {
            starts.push(count[r]);
            rows.push(r as u32);
        }
    }
    starts.push(index.len() as u32);
    (order, starts, rows)
}

/// Tokens summed by one block of the embedding gradient's first stage.
pub(super) const EMBED_CHUNK: u32 = 32;

/// Splits each group `starts[g]..starts[g + 1]` of a grouped token list into chunks of at most `chunk`:
/// `(chunk_start, chunk_end, group_chunk)`, group `g` owning chunks `group_chunk[g]..group_chunk[g + 1]`.
pub fn chunk_groups(starts: &[u32], chunk: u32) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let (mut cs, mut ce, mut gc) = (Vec::new(), Vec::new(), vec![0u32]);
    for w in starts.windows(2) {
        let mut q = w[0];
        while q < w[1] {
            let end = (q + chunk.max(1)).min(w[1]);
            cs.push(q);
            ce.push(end);
            q = end;
        }
        gc.push(cs.len() as u32);
    }
    (cs, ce, gc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::backend::{Buf, Operand, Region};
    use crate::runtime::Precision;

    /// What cuBLASLt computes for a column-major shape: D (m × n, ld ldd) = op(A) · op(B) (+ D).
    fn column_major(s: &GemmShape, a: &[f32], b: &[f32], d: &mut [f32]) {
        let (m, n, k) = (s.m as usize, s.n as usize, s.k as usize);
        let at = |i: usize, l: usize| if s.trans_a { a[l + i * s.lda as usize] } else { a[i + l * s.lda as usize] };
        let bt = |l: usize, j: usize| if s.trans_b { b[j + l * s.ldb as usize] } else { b[l + j * s.ldb as usize] };
        for j in 0..n {
            for i in 0..m {
                let v: f32 = (0..k).map(|l| at(i, l) * bt(l, j)).sum();
                let o = &mut d[i + j * s.ldd as usize];
                *o = if s.accumulate { *o + v } else { v };
            }
        }
    }

    #[test]
    fn row_major_products_map_onto_column_major_cublaslt_shapes() {
        let (m, n, k) = (5usize, 3usize, 4usize);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.71).cos()).collect();
        // a[i][l] and b[l][j] in both storage orders
        let a_t: Vec<f32> = (0..k * m).map(|x| a[(x % m) * k + x / m]).collect();
        let b_t: Vec<f32> = (0..n * k).map(|x| b[(x % k) * n + x / k]).collect();
        let expect: Vec<f32> = (0..m * n).map(|x| (0..k).map(|l| a[(x / n) * k + l] * b[l * n + x % n]).sum()).collect();
        let buf = |len| Buf { region: Region::Acts, offset: 0, len };
        for (a_op, a_data) in [(Operand::rows(buf(m * k), k), &a), (Operand::transposed(buf(m * k), m), &a_t)] {
            for (b_op, b_data) in [(Operand::rows(buf(k * n), n), &b), (Operand::transposed(buf(k * n), k), &b_t)] {
                for accumulate in [false, true] {
                    let g = Gemm { m, n, k, a: a_op, b: b_op, c: buf(m * n), accumulate, bias: None, precision: Precision::F32 };
                    let (shape, a_span, b_span) = lt_shape(&g).expect("shape");
                    assert_eq!((a_span, b_span), (m * k, k * n));
                    let mut c = vec![1.0f32; m * n];
                    // cuBLASLt's A is our b, its B our a; its D (n × m, ld n) is our row-major c
                    column_major(&shape, b_data, a_data, &mut c);
                    for (x, (&got, &want)) in c.iter().zip(&expect).enumerate() {
                        let want = if accumulate { want + 1.0 } else { want };
                        assert!((got - want).abs() < 1e-5, "a cs {} b cs {} acc {accumulate}: element {x} {got} vs {want}", a_op.cs, b_op.cs);
                    }
                }
            }
        }
        // a strided operand that is neither row- nor column-major is refused
        let odd = Gemm { m, n, k, a: Operand { buf: buf(100), rs: 2, cs: 3 }, b: Operand::rows(buf(k * n), n), c: buf(m * n), accumulate: false, bias: None, precision: Precision::F32 };
        assert!(lt_shape(&odd).is_err());
    }

    #[test]
    fn groups_split_into_chunks_in_order() {
        // groups of 3, 0 (none here: starts are of non-empty groups), 70 and 1 tokens, chunks of 32
        let (cs, ce, gc) = chunk_groups(&[0, 3, 73, 74], 32);
        assert_eq!(cs, vec![0, 3, 35, 67, 73]);
        assert_eq!(ce, vec![3, 35, 67, 73, 74]);
        assert_eq!(gc, vec![0, 1, 4, 5]);
        let (cs, _, gc) = chunk_groups(&[0], 32);
        assert!(cs.is_empty());
        assert_eq!(gc, vec![0]);
    }

    #[test]
    fn embedding_rows_are_grouped_stably_by_table_row() {
        let idx = [3u32, 1, 3, 0, 1, 3];
        let (order, starts, rows) = group_rows(&idx, 5);
        assert_eq!(rows, vec![0, 1, 3]);
        assert_eq!(starts, vec![0, 1, 3, 6]);
        assert_eq!(order, vec![3, 1, 4, 0, 2, 5]);
        let (order, starts, rows) = group_rows(&[], 4);
        assert!(order.is_empty() && rows.is_empty());
        assert_eq!(starts, vec![0]);
    }
}
