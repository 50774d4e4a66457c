// Row-major products as cuBLAS (column-major) calls. A row-major [r,c] matrix with leading
// dimension ld is the column-major [c,r] matrix with the same ld, i.e. its transpose, so
// C = op(A) op(B) (row-major) is C^T = op(B)^T op(A)^T (column-major): swap the operands and
// the sizes m <-> n. Plain C++ so that tests/test_cuda.cpp checks it on the host against a
// reference column-major GEMM with cuBLAS's argument semantics.
#pragma once

namespace moedmft::cuda_detail {

// Arguments of cublas<t>gemmStridedBatched (transa, transb, m, n, k, A, lda, strideA, B, ldb,
// strideB, C, ldc, strideC, batchCount), column-major.
template <class T>
struct ColMajorGemm {
  bool trans_a, trans_b;
  int m, n, k;
  const T* a;
  int lda;
  long long stride_a;
  const T* b;
  int ldb;
  long long stride_b;
  T* c;
  int ldc;
  long long stride_c;
  int batch;
};

// Row-major C[m,n] = op(A)[m,k] op(B)[k,n] per batch entry; lda, ldb, ldc are the row-major
// leading dimensions (the stored row lengths), strides in elements (0 broadcasts an operand).
template <class T>
ColMajorGemm<T> rowmajor_gemm(bool ta, bool tb, int m, int n, int k, const T* A, int lda, long long sA, const T* B,
                              int ldb, long long sB, T* C, int ldc, long long sC, int batch) {
  return ColMajorGemm<T>{tb, ta, n, m, k, B, ldb, sB, A, lda, sA, C, ldc, sC, batch};
}

}  // namespace moedmft::cuda_detail
