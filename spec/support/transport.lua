-- The client options of a spec, for the transport it runs with: libcurl to the fake
-- API's URL, or, inside nginx (spec/support/nginx_busted.lua), the ngx transport through
-- the test proxy location /_bland_test, pointed at the same fake API. Specs of libcurl's
-- own options and behaviour carry the tag #curl, which the run inside nginx leaves out.
return function(o, api)
  if ngx then
    package.loaded.blandeval_test_upstream = api.base_url
    o.base_url, o.transport, o.location = nil, "ngx", "/_bland_test"
  else
    o.base_url = o.base_url or api.base_url
  end
  return o
end
