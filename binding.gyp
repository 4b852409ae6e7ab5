{
  "targets": [
    {
      "target_name": "vxnet_netns",
      "sources": ["native/netns.c", "native/rtnl.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
