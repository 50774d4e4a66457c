// The MPI side of solver/dmft/replicates.hpp (compiled only when CMake finds MPI).
#include "experiments/mpi_replicates.hpp"

// The C API only: OpenMPI's and MPICH's mpi.h otherwise pull in the removed C++ bindings.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <vector>

#include "solver/dmft/replicates.hpp"

namespace moedmft {

namespace {

// Every rank ends with every replicate's trace: each is broadcast from the rank that solved it
// (replicate r from rank r % n), in pieces that fit MPI's int counts.
bool share_replicates(std::vector<std::vector<double>>& blobs, bool ok) {
  int mine = ok ? 1 : 0, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
  if (!all) return false;
  int ranks = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  for (size_t r = 0; r < blobs.size(); ++r) {
    const int owner = int(r % size_t(ranks));
    unsigned long long n = blobs[r].size();
    MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, owner, MPI_COMM_WORLD);
    blobs[r].resize(n);
    constexpr unsigned long long piece = 1ull << 28;
    for (unsigned long long at = 0; at < n; at += piece)
      MPI_Bcast(blobs[r].data() + at, int(std::min(piece, n - at)), MPI_DOUBLE, owner, MPI_COMM_WORLD);
  }
  return true;
}

// In-place sum over the ranks, identical on every rank: reduced on rank 0 and broadcast (an
// allreduce may add in a different order on different ranks, and then the ranks' Cholesky pivots
// and top-K routes could part ways).
void sum_over_ranks(double* data, size_t count) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  constexpr size_t piece = size_t(1) << 28;
  for (size_t at = 0; at < count; at += piece) {
    const int n = int(std::min(piece, count - at));
    MPI_Reduce(rank == 0 ? MPI_IN_PLACE : data + at, data + at, n, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Bcast(data + at, n, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  }
}

}  // namespace

MpiSession::MpiSession(int& argc, char**& argv) {
  if (launched_ranks() <= 1 && !std::getenv("PMIX_RANK")) return;
  int provided = 0;
  // MPI is called from the main thread only, outside the OpenMP regions.
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  active_ = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks_);
  if (ranks_ > 1) {
    dmft::ReplicateSplit split;
    split.rank = rank_;
    split.ranks = ranks_;
    split.share = share_replicates;
    split.sum = sum_over_ranks;
    dmft::set_replicate_split(std::move(split));
  }
}

MpiSession::~MpiSession() {
  if (active_) MPI_Finalize();
}

bool MpiSession::built_with_mpi() const { return true; }

}  // namespace moedmft
