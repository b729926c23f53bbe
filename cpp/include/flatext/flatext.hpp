// flatext/flatext.hpp: umbrella header of the flatext C++ core.
//
// Header-only, templated on the scalar type (float, double), no Python.
// Link the CMake target flatext::flatext (Eigen, OpenMP and the GEMM backend
// come along). Names and conventions match the Python API one to one.
// From an installed package:
//   find_package(flatext CONFIG REQUIRED)   with -Dflatext_DIR=$(flatext paths --cmakedir)
// The API, the CMake options and the backend/thread notes: docs/cpp.md.
#pragma once

#include "activation.hpp"
#include "config.hpp"
#include "gemm.hpp"
#include "interpolation.hpp"
#include "kernels.hpp"
#include "lanczos.hpp"
#include "objective.hpp"
#include "pattern_gram.hpp"
#include "population.hpp"
#include "search.hpp"
#include "skeleton.hpp"
#include "symmetry.hpp"
#include "theta.hpp"
#include "tiling.hpp"
#include "training.hpp"
