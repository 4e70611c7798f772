#include "worker/worker_info_service.h"

namespace kubemoe::worker {

void FillWorkerInfo(const WorkerIdentity& identity, const ShardExperts& experts,
                    const WorkerMetrics& metrics, kubemoe::v1::WorkerInfo* info) {
  info->set_model(identity.model);
  info->set_shard_index(experts.shard());
  info->set_placement_version(identity.placement_version);
  info->set_build_version(identity.build_version);
  for (int32_t d = 0; d < experts.devices(); ++d) {
    kubemoe::v1::Device* device = info->add_devices();
    device->set_index(d);
    device->set_kind("cpu");
    device->set_name("cpu");
    for (int64_t layer : experts.moe_layers()) {
      kubemoe::v1::HostedExperts* hosted = device->add_experts();
      hosted->set_layer(static_cast<int32_t>(layer));
      for (int32_t e : experts.ExpertsOn(layer, d)) hosted->add_expert_ids(e);
    }
  }
  for (const layers::ExpertKey& key : experts.keys()) {
    kubemoe::v1::ExpertLoad* load = info->add_expert_loads();
    load->set_layer(static_cast<int32_t>(key.layer));
    load->set_expert_id(key.expert);
    load->set_tokens_total(metrics.ExpertTokens(key.layer, key.expert));
  }
}

grpc::ServerUnaryReactor* WorkerInfoService::GetWorkerInfo(
    grpc::CallbackServerContext* context, const kubemoe::v1::WorkerInfoRequest* /*request*/,
    kubemoe::v1::WorkerInfo* info) {
  FillWorkerInfo(identity_, experts_, metrics_, info);  // cheap: no need to leave this thread
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace kubemoe::worker
