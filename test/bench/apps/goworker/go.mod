module tether.bench/goworker

go 1.21
