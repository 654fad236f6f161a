#pragma once
// Standard base64 (RFC 4648) with padding, for data: URIs (the report's images, the Grad-CAM
// overlays drifa serve returns). Written here: it is a dozen lines.
#include <string>

namespace drifa::io {

std::string base64(const std::string& bytes);

}  // namespace drifa::io
