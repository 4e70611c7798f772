#include "kernels/cuda/runtime.h"

#include <cuda_runtime.h>

#include <utility>

namespace kubemoe::cuda {
namespace {

Status FromCuda(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::Ok();
  std::string message =
      std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
  if (err == cudaErrorMemoryAllocation) return ResourceExhausted(std::move(message));
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) {
    return Unavailable(std::move(message));
  }
  return Internal(std::move(message));
}

}  // namespace

int VisibleDeviceCount(std::string* why_none) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    // Clear the sticky error so later calls are not blamed for it.
    cudaGetLastError();
    if (why_none != nullptr) *why_none = cudaGetErrorString(err);
    return 0;
  }
  if (count == 0 && why_none != nullptr) *why_none = "the CUDA runtime reports no device";
  return count;
}

DeviceBuffer::~DeviceBuffer() {
  if (data_ != nullptr) cudaFree(data_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) cudaFree(data_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

StatusOr<DeviceBuffer> DeviceBuffer::Allocate(size_t bytes) {
  DeviceBuffer buffer;
  // A zero-byte request still gets a distinct valid pointer, so callers need no special case.
  const size_t asked = bytes == 0 ? 1 : bytes;
  KUBEMOE_RETURN_IF_ERROR(FromCuda(cudaMalloc(&buffer.data_, asked),
                                   ("cudaMalloc of " + std::to_string(bytes) + " bytes").c_str()));
  buffer.bytes_ = bytes;
  return buffer;
}

Status DeviceBuffer::Upload(const void* host, size_t bytes) {
  if (bytes > bytes_)
    return OutOfRange("upload of " + std::to_string(bytes) + " bytes to a " +
                      std::to_string(bytes_) + "-byte device buffer");
  return FromCuda(cudaMemcpy(data_, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy to device");
}

Status DeviceBuffer::Download(void* host, size_t bytes) const {
  if (bytes > bytes_)
    return OutOfRange("download of " + std::to_string(bytes) + " bytes from a " +
                      std::to_string(bytes_) + "-byte device buffer");
  return FromCuda(cudaMemcpy(host, data_, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy to host");
}

Status DeviceBuffer::Fill(uint8_t byte) {
  KUBEMOE_RETURN_IF_ERROR(FromCuda(cudaMemset(data_, byte, bytes_), "cudaMemset"));
  return FromCuda(cudaDeviceSynchronize(), "cudaMemset");
}

Status AllocateFilled(DeviceBuffer* buffer, size_t bytes, uint8_t byte) {
  StatusOr<DeviceBuffer> fresh = DeviceBuffer::Allocate(bytes);
  KUBEMOE_RETURN_IF_ERROR(fresh.status());
  *buffer = std::move(*fresh);
  return buffer->Fill(byte);
}

Status AllocateCopy(DeviceBuffer* buffer, const void* host, size_t bytes) {
  StatusOr<DeviceBuffer> fresh = DeviceBuffer::Allocate(bytes);
  KUBEMOE_RETURN_IF_ERROR(fresh.status());
  *buffer = std::move(*fresh);
  return buffer->Upload(host, bytes);
}

Status CopyToHostAsync(void* host, const void* device, size_t bytes, Stream stream) {
  return FromCuda(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream),
                  "cudaMemcpyAsync to host");
}

Status SynchronizeStream(Stream stream, const char* what) {
  return FromCuda(cudaStreamSynchronize(stream), what);
}

Status SynchronizeDevice(const char* what) { return FromCuda(cudaDeviceSynchronize(), what); }

Status LastLaunchError(const char* what) { return FromCuda(cudaGetLastError(), what); }

EventTimer::EventTimer() {
  cudaEvent_t start = nullptr;
  cudaEvent_t stop = nullptr;
  if (cudaEventCreate(&start) == cudaSuccess) start_ = start;
  if (cudaEventCreate(&stop) == cudaSuccess) stop_ = stop;
}

EventTimer::~EventTimer() {
  if (start_ != nullptr) cudaEventDestroy(static_cast<cudaEvent_t>(start_));
  if (stop_ != nullptr) cudaEventDestroy(static_cast<cudaEvent_t>(stop_));
}

Status EventTimer::Start(Stream stream) {
  if (start_ == nullptr) return Internal("EventTimer: cudaEventCreate failed");
  return FromCuda(cudaEventRecord(static_cast<cudaEvent_t>(start_), stream), "cudaEventRecord");
}

Status EventTimer::Stop(Stream stream) {
  if (stop_ == nullptr) return Internal("EventTimer: cudaEventCreate failed");
  return FromCuda(cudaEventRecord(static_cast<cudaEvent_t>(stop_), stream), "cudaEventRecord");
}

StatusOr<double> EventTimer::ElapsedMs() {
  KUBEMOE_RETURN_IF_ERROR(
      FromCuda(cudaEventSynchronize(static_cast<cudaEvent_t>(stop_)), "cudaEventSynchronize"));
  float ms = 0.0f;
  KUBEMOE_RETURN_IF_ERROR(FromCuda(
      cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start_), static_cast<cudaEvent_t>(stop_)),
      "cudaEventElapsedTime"));
  return static_cast<double>(ms);
}

StatusOr<DeviceInfo> CurrentDeviceInfo() {
  int device = 0;
  KUBEMOE_RETURN_IF_ERROR(FromCuda(cudaGetDevice(&device), "cudaGetDevice"));
  cudaDeviceProp prop{};
  KUBEMOE_RETURN_IF_ERROR(
      FromCuda(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties"));
  DeviceInfo info;
  info.name = prop.name;
  info.multiprocessors = prop.multiProcessorCount;
  info.compute_major = prop.major;
  info.compute_minor = prop.minor;
  info.global_memory_bytes = prop.totalGlobalMem;
  info.l2_bytes = static_cast<size_t>(prop.l2CacheSize);
  return info;
}

}  // namespace kubemoe::cuda
