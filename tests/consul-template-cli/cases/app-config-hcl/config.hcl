consul {
  address = "ADDR"
}

log_level = "err"

wait {
  min = "1s"
  max = "4s"
}

template {
  source      = "DIR/app.ctmpl"
  destination = "DIR/out/app.ini"
  perms       = 0640
  command     = "install -m 0644 /dev/null DIR/out/app.reloaded"
  wait        = "2s:5s"
}

template {
  contents = <<EOF
[[ range tree "service/shop/features" ]]feature.[[ .Key ]]=[[ .Value ]] {{ not a delimiter }}
[[ end ]]
EOF
  destination     = "DIR/out/conf.d/features.properties"
  left_delimiter  = "[["
  right_delimiter = "]]"
  perms           = "0600"
  command         = "sh -c 'echo \"$(cat DIR/out/conf.d/features.properties | wc -l) features\" > DIR/out/features.count; chmod 0644 DIR/out/features.count'"
}
