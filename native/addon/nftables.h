// nftables through libnftables, no process per call (nftables.cc).
#pragma once
#include <napi.h>

void InitNftables(Napi::Env env, Napi::Object exports);
