// The GPU benchmark of the kernel harness's cases (tests/kernel_ops/) at DeepSeek-V2 sizes
// (Scale::kBench), with the machine's own ceilings measured in the same run: the device-to-device
// copy bandwidth (bytes read + written) and, through the dense_gemm cases, cuBLAS's dense bf16
// rate. Prints a Markdown table (bench/RESULTS.md keeps the recorded runs) and, with --json PATH,
// one JSON object per case.
//
// Timing (device/METHOD.md): CUDA events around each launch, after warm-up launches; before every
// timed launch a 512 MB memset evicts the 60 MB L2, so inputs come from device memory as they
// would in a layer; the median of the timed launches is reported. Every case's outputs are read
// back after timing and must be free of NaN (they were poisoned), which catches a launch that
// silently did nothing at these sizes (correctness against references is the harness's job, at
// test sizes).
//
// Usage: kernel_ops_gpu [--filter SUBSTRING] [--repeats N] [--json PATH]
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "kernels/cuda/runtime.h"
#include "tests/kernel_ops/op_case.h"

namespace kubemoe::kernel_ops {
namespace {

struct Options {
  std::string filter;
  int repeats = 25;
  std::string json;
};

struct Row {
  std::string name;
  double median_ms = 0, min_ms = 0;
  double gbps = 0, tflops = 0;
  std::string note;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Copy bandwidth: a 4 GiB device-to-device copy, bytes read plus written, median of 10.
StatusOr<double> CopyBandwidthGBps(cuda::EventTimer& timer) {
  const size_t bytes = size_t{4} << 30;
  StatusOr<cuda::DeviceBuffer> a = cuda::DeviceBuffer::Allocate(bytes);
  StatusOr<cuda::DeviceBuffer> b = cuda::DeviceBuffer::Allocate(bytes);
  KUBEMOE_RETURN_IF_ERROR(a.status());
  KUBEMOE_RETURN_IF_ERROR(b.status());
  KUBEMOE_RETURN_IF_ERROR(a->Fill(0x3C));  // not zeros
  std::vector<double> ms;
  for (int i = 0; i < 13; ++i) {
    KUBEMOE_RETURN_IF_ERROR(timer.Start(nullptr));
    if (cudaMemcpyAsync(b->data(), a->data(), bytes, cudaMemcpyDeviceToDevice, nullptr) !=
        cudaSuccess) {
      return cuda::LastLaunchError("copy bandwidth");
    }
    KUBEMOE_RETURN_IF_ERROR(timer.Stop(nullptr));
    StatusOr<double> t = timer.ElapsedMs();
    KUBEMOE_RETURN_IF_ERROR(t.status());
    if (i >= 3) ms.push_back(*t);
  }
  return 2.0 * static_cast<double>(bytes) / (Median(ms) * 1e-3) / 1e9;
}

StatusOr<Row> TimeCase(OpCase& op, const Options& options, cuda::DeviceBuffer& flush,
                       cuda::EventTimer& timer) {
  Rng rng(20261128);
  op.Draw(rng);
  KUBEMOE_RETURN_IF_ERROR(op.CudaPrepare());
  for (int i = 0; i < 3; ++i) KUBEMOE_RETURN_IF_ERROR(op.CudaLaunch(nullptr));
  KUBEMOE_RETURN_IF_ERROR(cuda::SynchronizeDevice("warm-up"));
  std::vector<double> ms;
  for (int i = 0; i < options.repeats; ++i) {
    if (cudaMemsetAsync(flush.data(), i & 0xFF, flush.bytes(), nullptr) != cudaSuccess) {
      return cuda::LastLaunchError("L2 flush");
    }
    KUBEMOE_RETURN_IF_ERROR(timer.Start(nullptr));
    KUBEMOE_RETURN_IF_ERROR(op.CudaLaunch(nullptr));
    KUBEMOE_RETURN_IF_ERROR(timer.Stop(nullptr));
    StatusOr<double> t = timer.ElapsedMs();
    KUBEMOE_RETURN_IF_ERROR(t.status());
    ms.push_back(*t);
  }
  Row row;
  row.name = op.Name();
  row.median_ms = Median(ms);
  row.min_ms = *std::min_element(ms.begin(), ms.end());
  const Work work = op.work();
  row.gbps = work.bytes / (row.median_ms * 1e-3) / 1e9;
  row.tflops = work.flops / (row.median_ms * 1e-3) / 1e12;
  StatusOr<std::vector<Output>> outputs = op.CudaResults();
  KUBEMOE_RETURN_IF_ERROR(outputs.status());
  size_t nan = 0;
  for (const Output& o : op.OutputsMayHoldNaN() ? std::vector<Output>{} : *outputs) {
    for (double v : o.values) nan += std::isnan(v) ? 1 : 0;
  }
  if (nan > 0) row.note = std::to_string(nan) + " NaN outputs";
  return row;
}

int Main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--filter" && i + 1 < argc) {
      options.filter = argv[++i];
    } else if (arg == "--repeats" && i + 1 < argc) {
      options.repeats = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--json" && i + 1 < argc) {
      options.json = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--filter SUBSTRING] [--repeats N] [--json PATH]\n", argv[0]);
      return 2;
    }
  }
  std::string why;
  if (cuda::VisibleDeviceCount(&why) == 0) {
    std::fprintf(stderr, "kernel_ops_gpu: no CUDA device (%s)\n", why.c_str());
    return 1;
  }
  StatusOr<cuda::DeviceInfo> info = cuda::CurrentDeviceInfo();
  if (!info.ok()) {
    std::fprintf(stderr, "%s\n", info.status().ToString().c_str());
    return 1;
  }
  cuda::EventTimer timer;
  StatusOr<double> copy = CopyBandwidthGBps(timer);
  if (!copy.ok()) {
    std::fprintf(stderr, "copy bandwidth: %s\n", copy.status().ToString().c_str());
    return 1;
  }
  StatusOr<cuda::DeviceBuffer> flush = cuda::DeviceBuffer::Allocate(size_t{512} << 20);
  if (!flush.ok()) {
    std::fprintf(stderr, "%s\n", flush.status().ToString().c_str());
    return 1;
  }
  std::printf("device: %s, %d SMs, L2 %zu MB, compute %d.%d\n", info->name.c_str(),
              info->multiprocessors, info->l2_bytes >> 20, info->compute_major,
              info->compute_minor);
  std::printf("device-to-device copy: %.0f GB/s (read + write)\n\n", *copy);
  std::printf("| case | median ms | min ms | GB/s | of copy | TFLOP/s | note |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---|\n");
  std::ofstream json;
  if (!options.json.empty()) json.open(options.json);
  if (json.is_open()) {
    json << "{\"device\": \"" << info->name << "\", \"copy_gbps\": " << *copy << "}\n";
  }
  int failures = 0;
  CaseList cases = MakeAllCases(Scale::kBench);
  for (auto& op : cases) {
    if (!options.filter.empty() && op->Name().find(options.filter) == std::string::npos) continue;
    StatusOr<Row> row = TimeCase(*op, options, *flush, timer);
    if (!row.ok()) {
      ++failures;
      std::printf("| %s | | | | | | FAILED: %s |\n", op->Name().c_str(),
                  row.status().ToString().c_str());
      std::fflush(stdout);
      continue;
    }
    if (!row->note.empty()) ++failures;
    std::printf("| %s | %.4f | %.4f | %.0f | %.2f | %.1f | %s |\n", row->name.c_str(),
                row->median_ms, row->min_ms, row->gbps, row->gbps / *copy, row->tflops,
                row->note.c_str());
    std::fflush(stdout);
    if (json.is_open()) {
      json << "{\"case\": \"" << row->name << "\", \"median_ms\": " << row->median_ms
           << ", \"min_ms\": " << row->min_ms << ", \"gbps\": " << row->gbps
           << ", \"tflops\": " << row->tflops << ", \"note\": \"" << row->note << "\"}\n";
    }
    // Cases keep their device memory: the grouped-FFN and MoE-layer cases share one set of
    // expert weights (7.5 GB) that would otherwise be drawn again for each.
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace kubemoe::kernel_ops

int main(int argc, char** argv) { return kubemoe::kernel_ops::Main(argc, argv); }
