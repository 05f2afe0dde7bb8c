// The chat page served at GET / (src/lowbit/server/chat_page.html, compiled in by CMake).
#pragma once

#include <string>

namespace lowbit::server {

const std::string& ChatPageHtml();

}  // namespace lowbit::server
