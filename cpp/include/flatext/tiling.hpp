// flatext/tiling.hpp: the fixed row-tile partition behind every kernel.
//
// X is walked in tiles of `tile` rows; consecutive tiles are grouped into
// `chunks`. Both numbers depend only on the shapes (never on the thread
// count), each chunk accumulates its tiles in order into its own buffers, and
// the chunks' partial results are summed in chunk order: the same inputs give
// the same bits with any number of threads. Extra memory is O(tile * m) per
// thread plus O(chunks * m * d) for gradient accumulators.
#pragma once

#include <algorithm>

#include "config.hpp"
#include "gemm.hpp"

namespace flatext {

struct TilePlan {
    Index n = 0, tile = 1, tiles = 0, chunks = 0;

    /// grad_elems: size of one chunk's gradient accumulator (m*d), 0 if none. tile_bytes: the
    /// pre-activation buffer a tile aims at (~2 MB: the tile stays in cache between its passes;
    /// passes whose GEMMs have the tile's rows as their inner dimension or m as theirs ask for more).
    TilePlan(Index n_, Index m, Index grad_elems, std::size_t scalar_size,
             std::size_t tile_bytes = std::size_t(1) << 21)
        : n(n_) {
        // tile_bytes of pre-activations per tile buffer, between 16 and 256 rows.
        const Index target = Index(tile_bytes / (scalar_size * std::size_t(std::max<Index>(m, 1))));
        tile = std::clamp<Index>(target, 16, 256);
        tiles = (n + tile - 1) / tile;
        Index c = std::min<Index>(tiles, 64);
        if (grad_elems > 0) {
            // cap the chunk accumulators at ~128 MB in all
            const Index cap = Index((std::size_t(128) << 20) / (scalar_size * std::size_t(grad_elems)));
            c = std::min<Index>(c, std::max<Index>(1, std::min<Index>(cap, 16)));
        }
        chunks = std::max<Index>(c, tiles > 0 ? 1 : 0);
    }
    Index chunk_begin(Index c) const { return tiles * c / chunks; }  // first tile of chunk c
    Index row_begin(Index t) const { return t * tile; }
    Index rows(Index t) const { return std::min(tile, n - t * tile); }
};

/// Below this many multiply-adds a call runs on one thread: waking a team
/// costs more than it saves, and on a busy machine a descheduled team member
/// stalls the whole call. (Which thread runs a chunk never changes the bits.)
inline constexpr double kSerialWork = 1 << 21;

/// Runs body(chunk) for every chunk on the kernel thread pool, rethrowing the
/// first exception on the caller's thread. `work` (multiply-adds, if known)
/// lets tiny calls skip the thread team.
template <class Body>
void parallel_chunks(const TilePlan& plan, Body&& body, double work = 1e300) {
    gemm::init_backend();
    detail::ExceptionTrap trap;
    const int nt = work < kSerialWork ? 1 : int(std::min<Index>(get_num_threads(), plan.chunks));
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt > 0 ? nt : 1)
#endif
    for (Index c = 0; c < plan.chunks; ++c) trap.run([&] { body(c); });
    trap.rethrow();
}

}  // namespace flatext
