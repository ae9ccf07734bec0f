//! Matrix products through cuBLASLt: the engine's three dense-layer products in row-major terms, mapped
//! to cuBLASLt's column-major descriptors; one plan (descriptors + heuristic algorithms) cached per shape;
//! our own fixed workspace; no in-place split-K reduction. Same inputs, same algorithm, same workspace:
//! the same bits (checked by the GPU self-test).

use crate::device::Gpu;
use crate::error::{BlasContext, CudaError, Result};
use crate::memory::DeviceBuffer;
use cudarc::cublaslt::{result, sys};
use cudarc::driver::sys::CUdeviceptr;
use std::collections::HashMap;
use std::ffi::c_void;

/// cuBLASLt workspace owned by [`Blas`] (the size llm.c and PyTorch use on Hopper).
pub const WORKSPACE_BYTES: usize = 32 << 20;

/// How many algorithms the heuristic is asked for per shape.
pub const MAX_ALGORITHMS: usize = 8;

/// Element type of a GEMM operand or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// bfloat16.
    BF16,
}

impl DType {
    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::BF16 => 2,
        }
    }
    fn cuda(self) -> sys::cudaDataType {
        match self {
            DType::F32 => sys::cudaDataType::CUDA_R_32F,
            DType::BF16 => sys::cudaDataType::CUDA_R_16BF,
        }
    }
}

/// A product in cuBLASLt's column-major terms: `D (m × n) = op(A) · op(B)`, plus `D` itself when
/// `accumulate` (β = 1), plus a bias per row of `D` when `bias`. Compute is f32 in every case (no TF32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GemmShape {
    /// Rows of D.
    pub m: u64,
    /// Columns of D.
    pub n: u64,
    /// The summed dimension.
    pub k: u64,
    /// A is stored k × m and transposed.
    pub trans_a: bool,
    /// B is stored n × k and transposed.
    pub trans_b: bool,
    /// Leading dimensions of the stored A, B and D.
    pub lda: u64,
    /// See `lda`.
    pub ldb: u64,
    /// See `lda`.
    pub ldd: u64,
    /// Operand A's type.
    pub a: DType,
    /// Operand B's type.
    pub b: DType,
    /// Output type.
    pub d: DType,
    /// Bias epilogue (bias of type `d`, one per row of D).
    pub bias: bool,
    /// β = 1: add into D.
    pub accumulate: bool,
    /// Products in the batch (1: a single product); batch `i` reads A, B and D `i` strides further.
    pub batch: u64,
    /// Elements between consecutive batches of A, B and D.
    pub strides: [u64; 3],
}

impl GemmShape {
    /// A dense layer's forward in row-major terms: `y[t, o] = Σ_i x[t, i] · w[o, i] (+ b[o])` with
    /// `x [tokens, inp]`, `w [out, inp]` (Hugging Face layout) and `y [tokens, out]`.
    pub fn linear(tokens: u64, inp: u64, out: u64, operand: DType, output: DType, bias: bool) -> Self {
        GemmShape {
            m: out, n: tokens, k: inp, trans_a: true, trans_b: false, lda: inp, ldb: inp, ldd: out,
            a: operand, b: operand, d: output, bias, accumulate: false, batch: 1, strides: [0; 3],
        }
    }
    /// Its input gradient: `dx[t, i] (+)= Σ_o dy[t, o] · w[o, i]`, `dx [tokens, inp]`.
    pub fn input_grad(tokens: u64, inp: u64, out: u64, operand: DType, output: DType, accumulate: bool) -> Self {
        GemmShape {
            m: inp, n: tokens, k: out, trans_a: false, trans_b: false, lda: inp, ldb: out, ldd: inp,
            a: operand, b: operand, d: output, bias: false, accumulate, batch: 1, strides: [0; 3],
        }
    }
    /// Its weight gradient: `dw[o, i] (+)= Σ_t dy[t, o] · x[t, i]`, `dw [out, inp]`.
    pub fn weight_grad(tokens: u64, inp: u64, out: u64, operand: DType, output: DType, accumulate: bool) -> Self {
        GemmShape {
            m: inp, n: out, k: tokens, trans_a: false, trans_b: true, lda: inp, ldb: out, ldd: inp,
            a: operand, b: operand, d: output, bias: false, accumulate, batch: 1, strides: [0; 3],
        }
    }
    /// Floating-point operations of one product (2·m·n·k).
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }
    /// (rows, cols) of A as stored.
    pub fn a_stored(&self) -> (u64, u64) {
        if self.trans_a { (self.k, self.m) } else { (self.m, self.k) }
    }
    /// (rows, cols) of B as stored.
    pub fn b_stored(&self) -> (u64, u64) {
        if self.trans_b { (self.n, self.k) } else { (self.k, self.n) }
    }
    /// Bytes each stored operand spans (leading dimension × columns), for bounds checks.
    pub fn spans(&self) -> (usize, usize, usize) {
        let (_, ac) = self.a_stored();
        let (_, bc) = self.b_stored();
        let extra = |stride: u64| (self.batch.max(1) - 1) * stride;
        (
            (self.lda * ac + extra(self.strides[0])) as usize * self.a.bytes(),
            (self.ldb * bc + extra(self.strides[1])) as usize * self.b.bytes(),
            (self.ldd * self.n + extra(self.strides[2])) as usize * self.d.bytes(),
        )
    }
    fn check(&self) -> Result<()> {
        let (ar, _) = self.a_stored();
        let (br, _) = self.b_stored();
        if self.m == 0 || self.n == 0 || self.k == 0 || self.batch == 0 || self.lda < ar || self.ldb < br || self.ldd < self.m || self.batch > i32::MAX as u64 {
            return Err(CudaError::Invalid(format!("GEMM shape {self:?}")));
        }
        Ok(())
    }
}

/// Device addresses of one product's operands (`bias` is 0 when the shape has none).
#[derive(Debug, Clone, Copy)]
pub struct GemmArgs {
    /// A.
    pub a: CUdeviceptr,
    /// B.
    pub b: CUdeviceptr,
    /// D (also C when accumulating).
    pub d: CUdeviceptr,
    /// Bias, or 0.
    pub bias: CUdeviceptr,
}

/// Descriptors and heuristic algorithms for one shape.
struct Plan {
    desc: sys::cublasLtMatmulDesc_t,
    layouts: [sys::cublasLtMatrixLayout_t; 3],
    algorithms: Vec<sys::cublasLtMatmulHeuristicResult_t>,
    chosen: usize,
}

impl Drop for Plan {
    fn drop(&mut self) {
        // SAFETY: each descriptor was created once in `Blas::plan`.
        unsafe {
            let _ = result::destroy_matmul_desc(self.desc);
            for l in self.layouts {
                let _ = result::destroy_matrix_layout(l);
            }
        }
    }
}

/// A cuBLASLt handle with its workspace and the plan cache.
pub struct Blas {
    handle: sys::cublasLtHandle_t,
    workspace: DeviceBuffer,
    /// Plans by shape and by the operands' common pointer alignment (cuBLASLt's heuristic otherwise
    /// assumes 256-byte-aligned pointers).
    plans: HashMap<(GemmShape, u32), Plan>,
}

/// The pointer alignment a product's plan is made for: every operand's, and the second product's of a batch.
fn alignment(shape: &GemmShape, args: &GemmArgs) -> u32 {
    let next = |p: CUdeviceptr, stride: u64, t: DType| if shape.batch > 1 { p + stride * t.bytes() as u64 } else { 0 };
    common_alignment(&[
        args.a, args.b, args.d, args.bias,
        next(args.a, shape.strides[0], shape.a), next(args.b, shape.strides[1], shape.b), next(args.d, shape.strides[2], shape.d),
    ])
}

/// The largest power of two up to 256 that divides every address (0 counts as aligned).
pub fn common_alignment(ptrs: &[CUdeviceptr]) -> u32 {
    ptrs.iter().filter(|&&p| p != 0).fold(256u32, |a, &p| a.min(1u32 << p.trailing_zeros().min(8)))
}

impl Blas {
    /// Creates the handle and allocates the workspace on `gpu`.
    pub fn new(gpu: &Gpu) -> Result<Blas> {
        gpu.bind()?;
        let handle = result::create_handle().what("create a handle")?;
        let workspace = DeviceBuffer::alloc(gpu, WORKSPACE_BYTES)?;
        Ok(Blas { handle, workspace, plans: HashMap::new() })
    }

    /// How many algorithms the heuristic offered for `shape` (planning it if needed).
    pub fn algorithm_count(&mut self, shape: &GemmShape) -> Result<usize> {
        Ok(self.plan(shape, 256)?.algorithms.len())
    }

    /// Runs `shape` (on 256-byte-aligned operands) with the heuristic's `index`-th algorithm from now on
    /// (0 is its first choice).
    pub fn choose_algorithm(&mut self, shape: &GemmShape, index: usize) -> Result<()> {
        let plan = self.plan(shape, 256)?;
        if index >= plan.algorithms.len() {
            return Err(CudaError::Invalid(format!("algorithm {index} of {}", plan.algorithms.len())));
        }
        plan.chosen = index;
        Ok(())
    }

    /// Queues one product on `gpu`'s stream.
    ///
    /// # Safety
    /// The addresses in `args` must be live device memory of `gpu` spanning at least
    /// [`GemmShape::spans`] bytes (and `m` elements of bias), and D must not overlap A or B.
    pub unsafe fn gemm(&mut self, gpu: &Gpu, shape: &GemmShape, args: &GemmArgs) -> Result<()> {
        for (what, p) in [("A", args.a), ("B", args.b), ("D", args.d), ("bias", args.bias)] {
            if p % 16 != 0 {
                return Err(CudaError::Invalid(format!("GEMM operand {what} at {p:#x} is not 16-byte aligned")));
            }
        }
        if shape.bias && args.bias == 0 {
            return Err(CudaError::Invalid("GEMM with bias epilogue but no bias".into()));
        }
        let ws = self.workspace.at(self.workspace.whole())?;
        let handle = self.handle;
        let plan = self.plan(shape, alignment(shape, args))?;
        if shape.bias {
            let p: CUdeviceptr = args.bias;
            result::set_matmul_desc_attribute(
                plan.desc,
                sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                (&p as *const CUdeviceptr).cast(),
                std::mem::size_of::<CUdeviceptr>(),
            )
            .what("set the bias pointer")?;
        }
        let alpha = 1.0f32;
        let beta = if shape.accumulate { 1.0f32 } else { 0.0 };
        let algo = &plan.algorithms[plan.chosen].algo;
        let [la, lb, ld] = plan.layouts;
        result::matmul(
            handle,
            plan.desc,
            (&alpha as *const f32).cast(),
            (&beta as *const f32).cast(),
            args.a as *const c_void,
            la,
            args.b as *const c_void,
            lb,
            args.d as *const c_void,
            ld,
            args.d as *mut c_void,
            ld,
            algo,
            ws as *mut c_void,
            WORKSPACE_BYTES,
            gpu.stream() as sys::cudaStream_t,
        )
        .what(format!("matmul {}x{}x{}", shape.m, shape.n, shape.k))
    }

    /// Whether cuBLASLt offers an algorithm for `shape` on these operands (planning it if so). Errors other
    /// than "none offered" are errors.
    pub fn supports(&mut self, shape: &GemmShape, args: &GemmArgs) -> Result<bool> {
        let align = alignment(shape, args);
        if self.plans.contains_key(&(*shape, align)) {
            return Ok(true);
        }
        shape.check()?;
        match self.new_plan(shape, align) {
            Ok(plan) => {
                self.plans.insert((*shape, align), plan);
                Ok(true)
            }
            Err(CudaError::NoAlgorithm(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn plan(&mut self, shape: &GemmShape, align: u32) -> Result<&mut Plan> {
        let key = (*shape, align);
        if !self.plans.contains_key(&key) {
            shape.check()?;
            let plan = self.new_plan(shape, align)?;
            self.plans.insert(key, plan);
        }
        self.plans.get_mut(&key).ok_or_else(|| CudaError::Invalid("plan cache".into()))
    }

    fn new_plan(&self, s: &GemmShape, align: u32) -> Result<Plan> {
        // SAFETY: descriptors are created, configured with values of the documented types, and owned by
        // the returned Plan (or destroyed on the error paths by Plan's Drop / the explicit destroys below).
        unsafe {
            let desc = result::create_matmul_desc(sys::cublasComputeType_t::CUBLAS_COMPUTE_32F, sys::cudaDataType::CUDA_R_32F)
                .what("create a matmul descriptor")?;
            let (ar, ac) = s.a_stored();
            let (br, bc) = s.b_stored();
            let layouts = [
                result::create_matrix_layout(s.a.cuda(), ar, ac, s.lda as i64).what("layout of A")?,
                result::create_matrix_layout(s.b.cuda(), br, bc, s.ldb as i64).what("layout of B")?,
                result::create_matrix_layout(s.d.cuda(), s.m, s.n, s.ldd as i64).what("layout of D")?,
            ];
            let mut plan = Plan { desc, layouts, algorithms: Vec::new(), chosen: 0 };
            if s.batch > 1 {
                use sys::cublasLtMatrixLayoutAttribute_t as L;
                let count = s.batch as i32;
                for (layout, stride) in layouts.iter().zip(s.strides) {
                    let stride = stride as i64;
                    result::set_matrix_layout_attribute(*layout, L::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, (&count as *const i32).cast(), 4).what("set the batch count")?;
                    result::set_matrix_layout_attribute(*layout, L::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, (&stride as *const i64).cast(), 8).what("set the batch stride")?;
                }
            }
            let set = |attr, v: i32| {
                result::set_matmul_desc_attribute(desc, attr, (&v as *const i32).cast(), 4).what(format!("set {attr:?}"))
            };
            set(sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSA, s.trans_a as i32)?;
            set(sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSB, s.trans_b as i32)?;
            let epilogue = if s.bias { sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS } else { sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_DEFAULT };
            set(sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_EPILOGUE, epilogue as i32)?;

            let pref = result::create_matmul_pref().what("create a preference")?;
            let ws = WORKSPACE_BYTES as u64;
            // split-K only with reductions in the workspace, never added up in place in the output
            let mask = sys::cublasLtReductionScheme_t::CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE as u32
                | sys::cublasLtReductionScheme_t::CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE as u32;
            let prefs = result::set_matmul_pref_attribute(
                pref,
                sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                (&ws as *const u64).cast(),
                8,
            )
            .and_then(|()| {
                result::set_matmul_pref_attribute(
                    pref,
                    sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                    (&mask as *const u32).cast(),
                    4,
                )
            })
            .and_then(|()| {
                // the operands' real alignment, so no algorithm that needs more is chosen
                use sys::cublasLtMatmulPreferenceAttributes_t as P;
                [P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES]
                    .into_iter()
                    .try_for_each(|attr| result::set_matmul_pref_attribute(pref, attr, (&align as *const u32).cast(), 4))
            });
            let mut found = vec![std::mem::zeroed::<sys::cublasLtMatmulHeuristicResult_t>(); MAX_ALGORITHMS];
            let mut count = 0i32;
            let heuristic = prefs.and_then(|()| {
                sys::cublasLtMatmulAlgoGetHeuristic(
                    self.handle, desc, layouts[0], layouts[1], layouts[2], layouts[2], pref,
                    MAX_ALGORITHMS as i32, found.as_mut_ptr(), &mut count,
                )
                .result()
            });
            let _ = result::destroy_matmul_pref(pref);
            if let Err(e) = &heuristic {
                if e.0 == sys::cublasStatus_t::CUBLAS_STATUS_NOT_SUPPORTED {
                    return Err(CudaError::NoAlgorithm(format!("{s:?}")));
                }
            }
            heuristic.what(format!("choose an algorithm for {s:?}"))?;
            found.truncate(count.max(0) as usize);
            found.retain(|r| r.state == sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS && r.workspaceSize <= WORKSPACE_BYTES);
            if found.is_empty() {
                return Err(CudaError::NoAlgorithm(format!("{s:?}")));
            }
            plan.algorithms = found;
            Ok(plan)
        }
    }
}

impl Drop for Blas {
    fn drop(&mut self) {
        self.plans.clear();
        // SAFETY: created in `new`, destroyed once, after the plans that used it.
        unsafe {
            let _ = result::destroy_handle(self.handle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_alignment_is_the_weakest_pointers() {
        assert_eq!(common_alignment(&[0x7f00_0000_0000, 0]), 256);
        assert_eq!(common_alignment(&[0x7f00_0000_0000, 0x7f00_0000_0080]), 128);
        assert_eq!(common_alignment(&[0x7f00_0000_0010, 0x7f00_0000_0100]), 16);
        assert_eq!(common_alignment(&[]), 256);
    }

    /// Reads element (r, c) of a column-major matrix stored with leading dimension `ld`.
    fn cm(data: &[f64], ld: u64, r: u64, c: u64) -> f64 {
        data[(c * ld + r) as usize]
    }

    /// Evaluates a shape the way cuBLASLt defines it, on row-major host data laid out as the engine stores it.
    fn evaluate(s: &GemmShape, a: &[f64], b: &[f64], d: &mut [f64]) {
        for j in 0..s.n {
            for i in 0..s.m {
                let mut acc = 0.0;
                for l in 0..s.k {
                    let av = if s.trans_a { cm(a, s.lda, l, i) } else { cm(a, s.lda, i, l) };
                    let bv = if s.trans_b { cm(b, s.ldb, j, l) } else { cm(b, s.ldb, l, j) };
                    acc += av * bv;
                }
                let slot = &mut d[(j * s.ldd + i) as usize];
                *slot = if s.accumulate { *slot + acc } else { acc };
            }
        }
    }

    fn data(n: usize, salt: u64) -> Vec<f64> {
        (0..n as u64).map(|i| ((i * 7 + salt * 13) % 11) as f64 - 5.0).collect()
    }

    #[test]
    fn row_major_products_map_to_column_major_descriptors() {
        let (t, inp, out) = (5u64, 3u64, 4u64);
        let x = data((t * inp) as usize, 1); // [t, inp]
        let w = data((out * inp) as usize, 2); // [out, inp]
        let dy = data((t * out) as usize, 3); // [t, out]
        let at = |m: &[f64], cols: u64, r: u64, c: u64| m[(r * cols + c) as usize];

        // forward: y[t, o] = Σ_i x[t, i] w[o, i]
        let s = GemmShape::linear(t, inp, out, DType::BF16, DType::BF16, false);
        let mut y = vec![0.0; (t * out) as usize];
        evaluate(&s, &w, &x, &mut y);
        for r in 0..t {
            for o in 0..out {
                let want: f64 = (0..inp).map(|i| at(&x, inp, r, i) * at(&w, inp, o, i)).sum();
                assert_eq!(at(&y, out, r, o), want, "y[{r},{o}]");
            }
        }
        // input gradient: dx[t, i] = Σ_o dy[t, o] w[o, i]
        let s = GemmShape::input_grad(t, inp, out, DType::BF16, DType::F32, false);
        let mut dx = vec![0.0; (t * inp) as usize];
        evaluate(&s, &w, &dy, &mut dx);
        for r in 0..t {
            for i in 0..inp {
                let want: f64 = (0..out).map(|o| at(&dy, out, r, o) * at(&w, inp, o, i)).sum();
                assert_eq!(at(&dx, inp, r, i), want, "dx[{r},{i}]");
            }
        }
        // weight gradient, accumulated: dw[o, i] += Σ_t dy[t, o] x[t, i]
        let s = GemmShape::weight_grad(t, inp, out, DType::BF16, DType::F32, true);
        let start = data((out * inp) as usize, 4);
        let mut dw = start.clone();
        evaluate(&s, &x, &dy, &mut dw);
        for o in 0..out {
            for i in 0..inp {
                let want: f64 = at(&start, inp, o, i) + (0..t).map(|r| at(&dy, out, r, o) * at(&x, inp, r, i)).sum::<f64>();
                assert_eq!(at(&dw, inp, o, i), want, "dw[{o},{i}]");
            }
        }
    }

    #[test]
    fn spans_and_checks() {
        let s = GemmShape::linear(16384, 768, 2304, DType::BF16, DType::BF16, true);
        assert_eq!(s.flops(), 2.0 * 16384.0 * 768.0 * 2304.0);
        assert_eq!(s.spans(), (768 * 2304 * 2, 768 * 16384 * 2, 2304 * 16384 * 2));
        assert!(s.check().is_ok());
        let mut bad = s;
        bad.lda = 10;
        assert!(bad.check().is_err());
        bad = s;
        bad.k = 0;
        assert!(bad.check().is_err());
    }
}
