// The server's listening socket (server/http_server.cc): a port that another live server holds is
// refused with a clear error rather than shared, and a server restarted on the port it has just
// served from binds at once, though the connections it closed linger in TIME_WAIT (as a user
// restarting `lowbit serve`, or a benchmark starting servers in turn, does).
#include <gtest/gtest.h>
#include <httplib.h>

#include <memory>
#include <string>

#include "lowbit/server/http_server.h"

namespace lowbit::server {
namespace {

TEST(ServeListen, ALivePortIsRefusedAndARestartBindsAtOnce) {
  HttpOptions o;
  o.port = 0;
  auto first = std::make_unique<HttpServer>(o);
  const Expected<int> port = first->Start(1);
  ASSERT_TRUE(port.ok()) << port.status().message();
  HttpOptions same = o;
  same.port = *port;
  {
    HttpServer second(same);
    const Expected<int> s = second.Start(1);
    ASSERT_FALSE(s.ok()) << "a second server shares port " << *port;
    EXPECT_NE(s.status().message().find("cannot listen on 127.0.0.1:" + std::to_string(*port)), std::string::npos) << s.status().message();
  }
  // Connections the server closes itself (Connection: close) leave its side in TIME_WAIT.
  for (int i = 0; i < 5; ++i) {
    httplib::Client c("127.0.0.1", *port);
    auto r = c.Get("/health", httplib::Headers{{"Connection", "close"}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503);  // no model: loading
  }
  first->Stop();
  first.reset();
  HttpServer again(same);
  const Expected<int> p = again.Start(1);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(*p, *port);
  again.Stop();
}

}  // namespace
}  // namespace lowbit::server
