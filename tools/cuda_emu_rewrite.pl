#!/usr/bin/perl
# The CUDA emulator's source rewrite (tests/cuda/emu/cuda_runtime.h): reads a
# .cu file, writes C++ for g++. The two constructs that are not C++:
#   name<<<grid, block, shmem, stream>>>(args)
#     -> ::emu::launch("name", ::emu::cfg(grid, block, shmem, stream),
#                      [](auto... emu_a) { name(emu_a...); }, args)
#   __shared__ [__align__(n)] T name[dims];  ->  EMU_SHARED(T, name, [dims]);
# Line numbers are kept (a #line names the original file).
use strict;
use warnings;
my $path = $ARGV[0] or die "usage: cuda_emu_rewrite.pl FILE.cu\n";
open(my $fh, '<', $path) or die "cuda_emu_rewrite.pl: cannot read $path: $!\n";
local $/;
my $src = <$fh>;
close $fh;
my $launches = ($src =~ s{\b([A-Za-z_]\w*(?:<[^<>;()]*>)?)\s*<<<(.*?)>>>\s*(\((?:[^()]++|(?3))*\))}{
    my ($k, $cfg, $args) = ($1, $2, substr($3, 1, -1));
    "::emu::launch(\"$k\", ::emu::cfg($cfg), [](auto... emu_a) { $k(emu_a...); }, $args)"
}gse);
$src =~ s{__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?([\w:]+(?:\s*\*)?)\s+(\w+)\s*((?:\[[^\]]+\])+)\s*;}{EMU_SHARED($1, $2, $3);}g;
die "cuda_emu_rewrite.pl: $path: a launch or __shared__ declaration was not rewritten\n"
    if $src =~ /<<<|__shared__/;
print "#line 1 \"$path\"\n", $src;
