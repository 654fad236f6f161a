#pragma once
// The web page `drifa serve` answers at /: plain HTML, CSS and JavaScript in one document, no
// external assets. It reads /v1/model, offers a file (drop or choose) per modality, posts them to
// /v1/predict and shows each task's class, probability bars, uncertainty, prediction set and
// Grad-CAM overlays.
#include <string>

namespace drifa::serve {

const std::string& web_page();

}  // namespace drifa::serve
