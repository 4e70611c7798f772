// The slice of the CUDA runtime that plain C++ (tests, benchmarks, the engine) needs to drive the
// kernels in kernels/cuda/: device discovery, device memory, synchronization and event timing.
// No CUDA header is included here, so code that includes this compiles without the toolkit's
// headers; it links kubemoe_kernels_cuda, which exists only where a toolkit was found.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/status.h"

// The runtime's own stream type (cudaStream_t is CUstream_st*), declared so headers can name it.
struct CUstream_st;

namespace kubemoe::cuda {

using Stream = ::CUstream_st*;  // nullptr is the legacy default stream

// Number of CUDA devices this process can use. 0 when there is none, with the runtime's reason
// (no driver, no device) in *why_none when it is not null.
int VisibleDeviceCount(std::string* why_none = nullptr);

// Owns one device allocation (cudaMalloc). Move-only; freed on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // ResourceExhausted when the device lacks the memory; Internal for other runtime errors.
  static StatusOr<DeviceBuffer> Allocate(size_t bytes);

  void* data() const { return data_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  size_t bytes() const { return bytes_; }

  // Synchronous copies of the first `bytes` bytes. REQUIRES: bytes <= this->bytes().
  Status Upload(const void* host, size_t bytes);
  Status Download(void* host, size_t bytes) const;
  // Sets every byte. 0xFF poisons outputs: all-ones bits are NaN as f32 and bf16 and -1 as ints.
  Status Fill(uint8_t byte);

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Replace *buffer with a new allocation of `bytes`: every byte set to `byte` (0xFF poisons an
// output), or a copy of `bytes` bytes of `host`. The old allocation is freed.
Status AllocateFilled(DeviceBuffer* buffer, size_t bytes, uint8_t byte);
Status AllocateCopy(DeviceBuffer* buffer, const void* host, size_t bytes);

// Enqueues a device-to-host copy on `stream` (asynchronous with pageable host memory only as far
// as the runtime allows: it returns once the copy is staged); pair with SynchronizeStream.
Status CopyToHostAsync(void* host, const void* device, size_t bytes, Stream stream);

// Waits for the work queued on `stream`; returns its first error, naming `what`.
Status SynchronizeStream(Stream stream, const char* what);

// Waits for all device work; returns the first asynchronous error (a failed kernel), naming
// `what`.
Status SynchronizeDevice(const char* what);

// The error of the last launch (cudaGetLastError), naming `what`. Kernels' host functions return
// this after their launches so a bad configuration is reported where it happened.
Status LastLaunchError(const char* what);

// Elapsed device time between two events recorded on one stream.
class EventTimer {
 public:
  EventTimer();
  ~EventTimer();
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;

  Status Start(Stream stream);
  Status Stop(Stream stream);
  // Waits for the stop event; milliseconds between start and stop.
  StatusOr<double> ElapsedMs();

 private:
  void* start_ = nullptr;
  void* stop_ = nullptr;
};

// Sizes of the current device, read once: what kernels tune their grids to.
struct DeviceInfo {
  std::string name;
  int multiprocessors = 0;
  int compute_major = 0;
  int compute_minor = 0;
  size_t global_memory_bytes = 0;
  size_t l2_bytes = 0;
};
StatusOr<DeviceInfo> CurrentDeviceInfo();

}  // namespace kubemoe::cuda
