# visorsim's guest kernel: the code inside b.b00 (crates/image/src/kernel.rs).
#
# A Multiboot (v1) loader (QEMU's `-kernel`/`-initrd`, or any other) enters
# here in 32-bit protected mode, paging off, with EAX = 0x2BADB002 and EBX =
# the physical address of the Multiboot information structure. The code
# reads that structure and writes one report to COM1 (I/O port 0x3f8),
# every line starting with "visorsim-guest: ", numbers as 8 lowercase hex
# digits:
#
#   visorsim-guest: flags=<mbi flags>
#   visorsim-guest: cmdline <the command line, as the loader passed it>
#   visorsim-guest: module <index> start=<a> end=<b> length=<b-a> crc32=<c> string=<the module's string>
#   ...one line per module, in the loader's order...
#   visorsim-guest: end modules=<count> status=<status>
#
# then powers the machine off through QEMU's isa-debug-exit device
# (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`), writing the status
# byte to port 0xf4; QEMU exits with (status << 1) | 1. Status: 0 report
# complete, 1 not entered by a Multiboot loader (wrong EAX), 2 a module
# whose end lies before its start (its CRC32 is then of no bytes). Without
# that device the machine halts and whoever runs it stops it.
#
# The CRC32 is the gzip/zlib one (reflected polynomial 0xEDB88320, initial
# and final XOR 0xFFFFFFFF), table-driven: the 1 KiB table is built first.
#
# Build (what the test in kernel.rs does, and what made multiboot_guest.bin):
#   as --32 -mx86-used-note=no -o multiboot_guest.o multiboot_guest.s
#   ld -m elf_i386 --build-id=none -Ttext=0x101020 --oformat binary \
#      -o multiboot_guest.bin multiboot_guest.o
# 0x101020 is where kernel.rs places this code (LOAD_ADDRESS + ENTRY_OFFSET).

        .code32
        .set COM1, 0x3f8
        .set COM1_LSR, 0x3fd
        .set DEBUG_EXIT, 0xf4
        .set MULTIBOOT_BOOTLOADER_MAGIC, 0x2badb002
        # Scratch memory inside the kernel's declared bss (kernel.rs: SCRATCH).
        .set SCRATCH, 0x120000
        .set CRC_TABLE, SCRATCH             # 256 dwords
        .set MODS_COUNT, SCRATCH + 0x400
        .set EXIT_STATUS, SCRATCH + 0x404
        .set STACK_TOP, SCRATCH + 0x2000

        .text
        .globl _start
_start:
        cli
        cld
        mov $STACK_TOP, %esp
        movl $0, EXIT_STATUS
        cmp $MULTIBOOT_BOOTLOADER_MAGIC, %eax
        jne bad_magic
        mov %ebx, %ebp                      # EBP: the Multiboot information
        call crc_init

        mov $s_flags, %esi
        call puts
        mov (%ebp), %eax
        call puthex
        call newline

        mov $s_cmdline, %esi
        call puts
        testl $4, (%ebp)                    # flags bit 2: cmdline valid
        jz 1f
        mov 16(%ebp), %esi
        call puts
1:      call newline

        xor %ebx, %ebx                      # EBX: modules reported
        movl $0, MODS_COUNT
        testl $8, (%ebp)                    # flags bit 3: mods_* valid
        jz modules_done
        mov 20(%ebp), %eax
        mov %eax, MODS_COUNT
        mov 24(%ebp), %edi                  # EDI: the current module entry
next_module:
        cmp MODS_COUNT, %ebx
        jae modules_done
        mov $s_module, %esi
        call puts
        mov %ebx, %eax
        call puthex
        mov $s_start, %esi
        call puts
        mov (%edi), %eax
        call puthex
        mov $s_end, %esi
        call puts
        mov 4(%edi), %eax
        call puthex
        mov $s_length, %esi
        call puts
        mov 4(%edi), %ecx
        sub (%edi), %ecx
        jae 2f
        xor %ecx, %ecx                      # end before start: no bytes
        movl $2, EXIT_STATUS
2:      mov %ecx, %eax
        call puthex
        mov $s_crc32, %esi
        call puts
        mov (%edi), %esi
        call crc32
        call puthex
        mov $s_string, %esi
        call puts
        mov 8(%edi), %esi
        test %esi, %esi
        jz 3f
        call puts
3:      call newline
        add $16, %edi
        inc %ebx
        jmp next_module
modules_done:
        mov $s_done, %esi
        call puts
        mov %ebx, %eax
        call puthex
        mov $s_status, %esi
        call puts
        mov EXIT_STATUS, %eax
        call puthex
        call newline
        mov EXIT_STATUS, %eax
power_off:
        mov $DEBUG_EXIT, %dx
        out %al, %dx
halt:
        cli
        hlt
        jmp halt

bad_magic:
        mov %eax, %ebx
        mov $s_bad_magic, %esi
        call puts
        mov %ebx, %eax
        call puthex
        call newline
        mov $1, %eax
        jmp power_off

# putc: writes AL to COM1 once the transmitter holds no byte (bounded wait).
putc:
        push %eax
        push %ecx
        push %edx
        mov %al, %ah
        mov $100000, %ecx
        mov $COM1_LSR, %dx
1:      in %dx, %al
        test $0x20, %al
        jnz 2f
        loop 1b
2:      mov $COM1, %dx
        mov %ah, %al
        out %al, %dx
        pop %edx
        pop %ecx
        pop %eax
        ret

# puts: writes the NUL-terminated string at ESI.
puts:
        pusha
1:      lodsb
        test %al, %al
        jz 2f
        call putc
        jmp 1b
2:      popa
        ret

newline:
        push %eax
        mov $'\n', %al
        call putc
        pop %eax
        ret

# puthex: writes EAX as 8 lowercase hex digits.
puthex:
        pusha
        mov %eax, %edx
        mov $8, %ecx
1:      rol $4, %edx
        mov %edx, %eax
        and $0xf, %eax
        mov hex_digits(%eax), %al
        call putc
        loop 1b
        popa
        ret

# crc_init: fills CRC_TABLE[n] with the CRC of the byte n.
crc_init:
        pusha
        xor %ecx, %ecx
1:      mov %ecx, %eax
        mov $8, %edx
2:      shr $1, %eax
        jnc 3f
        xor $0xedb88320, %eax
3:      dec %edx
        jnz 2b
        mov %eax, CRC_TABLE(,%ecx,4)
        inc %ecx
        cmp $256, %ecx
        jne 1b
        popa
        ret

# crc32: EAX = CRC32 of the ECX bytes at ESI.
crc32:
        push %ecx
        push %edx
        push %esi
        mov $0xffffffff, %eax
        test %ecx, %ecx
        jz 2f
1:      movzbl (%esi), %edx
        xor %al, %dl
        shr $8, %eax
        xor CRC_TABLE(,%edx,4), %eax
        inc %esi
        dec %ecx
        jnz 1b
2:      not %eax
        pop %esi
        pop %edx
        pop %ecx
        ret

hex_digits:     .ascii "0123456789abcdef"
s_flags:        .asciz "visorsim-guest: flags="
s_cmdline:      .asciz "visorsim-guest: cmdline "
s_module:       .asciz "visorsim-guest: module "
s_start:        .asciz " start="
s_end:          .asciz " end="
s_length:       .asciz " length="
s_crc32:        .asciz " crc32="
s_string:       .asciz " string="
s_done:         .asciz "visorsim-guest: end modules="
s_status:       .asciz " status="
s_bad_magic:    .asciz "visorsim-guest: not entered by a Multiboot loader: eax="
