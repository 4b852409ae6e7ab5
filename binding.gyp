{
  "targets": [
    {
      "target_name": "vxnet_netns",
      "sources": ["native/netns.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
