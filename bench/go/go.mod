module shmapbench

go 1.19
